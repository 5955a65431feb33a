"""Entry point of the ``vidlang`` command.

Every module ``vidlang.cli.<name>`` with a ``register(app: typer.Typer) -> None`` function is
discovered and asked to add its commands. Commands import heavy modules (torch, h5py) inside
their bodies so ``vidlang --help`` stays fast. User mistakes (:class:`VidlangError`) print one
red line and exit with code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import typer
from rich.console import Console

from vidlang.errors import VidlangError

app = typer.Typer(
    name="vidlang",
    help="Contrastive video-language learning: grounding, retrieval and sequence alignment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True)


def _register_commands() -> None:
    import vidlang.cli as pkg

    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name in {"main"} or info.name.startswith("_"):
            continue
        module = importlib.import_module(f"vidlang.cli.{info.name}")
        register = getattr(module, "register", None)
        if callable(register):
            register(app)


@app.callback()
def _root() -> None:
    """vidlang: find moments in videos, find videos from sentences, align paragraphs with videos."""


@app.command("version")
def version() -> None:
    """Print the installed vidlang version."""
    from vidlang import __version__

    typer.echo(__version__)


_register_commands()


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors become one line on stderr and exit code 2."""
    try:
        # with standalone_mode=False click returns (not raises) the code of a typer.Exit
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except VidlangError as e:
        err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except FileNotFoundError as e:
        err_console.print(f"[bold red]error:[/] {e.strerror}: {e.filename}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:  # click usage errors
        import click

        if isinstance(e, click.exceptions.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise


if __name__ == "__main__":
    main()
