"""CLI usage mistakes through the installed entry point: one ``error:`` line, exit code 2,
whichever click (typer's vendored ``typer._click`` or the ``click`` package) raised them."""

from __future__ import annotations

import pytest

from cli_support import one_line_error, run_vidlang

CASES = [
    (["trian"], "No such command 'trian'"),
    (["train"], "Missing argument"),
    (["train", "mmn/cpu", "--bogus"], "No such option: --bogus"),
    (["version", "extra"], "unexpected extra argument"),
    (["synth", "--out", "x", "--seed", "abc"], "'--seed'"),
    (["data", "stats", "--ann"], "'--ann' requires an argument"),
]


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_usage_error_is_one_line_exit_2(args: list[str], expected: str, tmp_path) -> None:
    line = one_line_error(run_vidlang(*args, cwd=tmp_path))
    assert expected.lower() in line.lower()
    if args[0] != "data":
        assert "--help" in line  # says where the command's help is


def test_help_shows_flags_without_a_type() -> None:
    proc = run_vidlang("evaluate", "grounding", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "<bool>" not in proc.stdout
    assert "--json " in proc.stdout
    assert "pred_relevant_windows [[s," in proc.stdout  # help text is not read as markup


def test_no_arguments_prints_the_help() -> None:
    proc = run_vidlang("data")
    assert "stats" in proc.stdout + proc.stderr and "validate" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("package", ["click", "typer._click"])
def test_both_clicks_usage_errors_are_one_line(package: str, monkeypatch, capsys) -> None:
    # typer < 0.2x raises the click package's exceptions; newer typer its vendored typer._click
    import importlib

    from vidlang.cli import main as cli_main

    exceptions = pytest.importorskip(f"{package}.exceptions")
    importlib.import_module(package)

    def raise_usage(*args, **kwargs):
        raise exceptions.UsageError("No such option: --bogus")

    monkeypatch.setattr(cli_main, "app", raise_usage)
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["whatever"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: No such option: --bogus"]
