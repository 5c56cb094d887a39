"""The ``alphanode`` command line. Each command parses its options and delegates.

Every command on the store reads ALPHANODE_DATABASE_URL (default: ``sqlite:///alphanode.db`` in
the working directory); ``--database`` overrides it. Commands return their exit code; ``main``
runs one and returns it, or raises ``SystemExit(2)`` for a command line it cannot parse.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from . import admin, posts, serve
from .common import LOG_FORMAT, forget_database, sqlite_hint, store_named

__all__ = ["app", "main"]


class _Commands(TyperGroup):
    """The group of every command: an interrupted command says so and exits 130."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130


app = typer.Typer(
    name="alphanode",
    cls=_Commands,
    help="alphanode content API: import, export, serve.",
    no_args_is_help=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(posts.commands)
app.add_typer(serve.commands)
app.add_typer(admin.commands)


@app.callback()
def _options(
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="log progress and decisions")] = False,
) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format=LOG_FORMAT, stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command ``argv`` (default: this process's arguments) names; its exit code."""
    forget_database()
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="alphanode", standalone_mode=False)
    except typer.Abort:
        print("Aborted!", file=sys.stderr)
        return 1
    except typer.TyperException as error:
        # A command line that cannot be parsed (exit code 2), as with every other parser.
        show = getattr(error, "show", None)
        if show is not None:
            show()
        else:
            print(f"Error: {error.format_message()}", file=sys.stderr)
        raise SystemExit(error.exit_code) from None
    except Exception as exc:
        from models.trouble import diagnose

        trouble = diagnose(exc)
        if trouble is None:
            raise
        # The store's trouble (a full disk, a read-only or locked file, a file that is not a store, a
        # database that does not answer): one line naming the store and the cause, not a traceback.
        print(f"error: {store_named()}: {trouble.message}{sqlite_hint(trouble)}", file=sys.stderr)
        return 1
    return int(code or 0)
