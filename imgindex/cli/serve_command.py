"""``imgindex serve``: the review app, on 127.0.0.1 with a secret token unless told otherwise."""

from __future__ import annotations

import webbrowser

import click

from imgindex.cli.app import cli, user_errors
from imgindex.cli.options import existing_db_option


@cli.command()
@existing_db_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on. Anything but a loopback address exposes the app (and your files) to the "
                   "network: the token still guards it, but think twice.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to listen on (0: any free port).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--read-only", is_flag=True, help="Show the groups; offer no way to decide or act.")
@click.option("--move-to", "move_to", type=click.Path(file_okay=False), default=None,
              help="The folder the page's 'Move' sends lower-quality files to (without it, the page offers the "
                   "trash only: a client never names a path).")
@user_errors
def serve(db_path, host, port, open_browser, read_only, move_to):
    """Serve a local review app of the index: look at groups, decide, act, undo. Ctrl-C stops it.

    Every request needs the secret token in the address printed (a new one each run).

    \b
    Examples:
      imgindex serve --db photos.db --open
      imgindex serve --db photos.db --move-to ~/duplicates
      imgindex serve --db photos.db --read-only --port 0
    """
    from imgindex.serve.server import serve as run  # Starlette and uvicorn load only for serving

    def ready(url: str, exposed: bool) -> None:
        if exposed:
            click.echo(f"WARNING: listening on {host}, not only this machine: anyone who can reach it and has the "
                       "token can act on your files.", err=True)
        click.echo(f"Serving {db_path} at {url}\n(open it in a browser; Ctrl-C stops the server)", err=True)
        click.echo(url)
        if open_browser:
            webbrowser.open(url)

    try:
        run(db_path, host=host, port=port, read_only=read_only, move_to=move_to, on_ready=ready)
    except KeyboardInterrupt:  # uvicorn stopped cleanly on Ctrl-C / SIGTERM, then passed the signal on
        pass
    click.echo("Stopped.", err=True)
