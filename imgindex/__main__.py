"""``python -m imgindex``: the same as the ``imgindex`` command."""

from imgindex.cli import cli

if __name__ == "__main__":
    cli()
