"""The ``imgindex`` command line: parse options, call one ``Index`` method, render the result.

In: argv. Out: text on stdout/stderr, an exit status (0 done, 1 a problem to fix, 2 a bad
option, 130 interrupted). Imports only the API, its types and errors, and its own modules:
``app`` (the group, errors, progress bars), ``options`` (shared options), the commands,
``decision_commands`` (ignore, keep, config...), ``render`` (tables, JSON, CSV, summaries), ``difpy_command`` (difPy's own flags).
"""

from imgindex.cli import action_commands, decision_commands, difpy_command, index_commands, serve_command  # noqa: F401  (they register the commands)
from imgindex.cli.app import cli

__all__ = ["cli", "main"]


def main():  # pragma: no cover - console script entry
    cli()
