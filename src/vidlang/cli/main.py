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
from typing import Any, NoReturn

import typer
from rich.console import Console

from vidlang.errors import VidlangError

app = typer.Typer(
    name="vidlang",
    help="Contrastive video-language learning: grounding, retrieval and sequence alignment.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: typer >= 0.2x's rich help prints every flag as `--json <bool>` and
    # reads `[[s, e]]` in help texts as markup
    rich_markup_mode=None,
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


def _fail(message: str, code: int = 2) -> NoReturn:
    """Print ``error: message`` as one unwrapped line on stderr (no markup) and exit."""
    from rich.text import Text

    err_console.print(Text.assemble(("error:", "bold red"), " ", " ".join(message.split())),
                      soft_wrap=True)
    sys.exit(code)


def _click_module(name: str) -> list[Any]:
    """``name`` (e.g. ``exceptions``) of every click the installed typer may use: typer >= 0.2x
    vendors click as ``typer._click``; older typer raises the ``click`` package's exceptions."""
    found = []
    for package in ("typer._click", "click"):
        try:
            found.append(importlib.import_module(f"{package}.{name}"))
        except ImportError:
            continue
    return found


def _is_a(e: BaseException, modules: list[Any], name: str) -> bool:
    """Whether ``e`` is an instance of class ``name`` of any of ``modules`` (where it exists)."""
    return any(isinstance(e, cls) for m in modules if isinstance(cls := getattr(m, name, None), type))


def _usage_message(e: Exception) -> str:
    """A click exception as one line: the message, and where to read the command's help."""
    message = e.format_message()  # type: ignore[attr-defined]
    ctx = getattr(e, "ctx", None)
    if ctx is not None and getattr(ctx, "command_path", None):
        message += f" (see: {ctx.command_path} --help)"
    return message


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; user errors (bad input, usage mistakes) become one line on stderr and exit 2."""
    try:
        # with standalone_mode=False click returns (not raises) the code of a typer.Exit
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except VidlangError as e:
        _fail(str(e))
    except FileNotFoundError as e:
        _fail(f"{e.strerror}: {e.filename}")
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as e:  # click's usage errors, from typer's vendored click or the click package
        exceptions = _click_module("exceptions")
        if _is_a(e, exceptions, "Abort"):
            sys.exit(1)
        if _is_a(e, exceptions, "NoArgsIsHelpError"):
            e.show()  # type: ignore[attr-defined]  # `vidlang data`: the group's help
            sys.exit(2)
        if _is_a(e, exceptions, "ClickException"):
            _fail(_usage_message(e))
        raise


if __name__ == "__main__":
    main()
