"""Every documentation code block that claims to run does: a ```python fence preceded by the
line ``<!-- test: run -->`` in README.md or docs/*.md is executed here, in a folder holding
what the README's commands would have made (``synthvl/`` from SynthVL tiny, ``runs/mmn`` and
``runs/dual`` trained for one epoch at tiny sizes, ``my_index`` built by ``vidlang index build``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cli_support import TINY_RETRIEVAL, synth_tiny, train_tiny_mmn
from repo_scripts import REPO

MARK = "<!-- test: run -->"
BLOCK = re.compile(r"^" + re.escape(MARK) + r"[ \t]*\n```python\n(.*?)\n```", re.S | re.M)


def runnable_blocks() -> list[tuple[str, int, str]]:
    """(file, line of the fence, code) of every marked block."""
    found = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text(encoding="utf-8")
        for m in BLOCK.finditer(text):
            line = text.count("\n", 0, m.start(1))
            found.append((str(path.relative_to(REPO)), line, m.group(1)))
        # a marker not followed by a python fence would silently test nothing
        markers = sum(ln.strip() == MARK for ln in text.splitlines())
        assert markers == len(BLOCK.findall(text)), f"{path}: {MARK} not right before a ```python block"
    return found


BLOCKS = runnable_blocks()


def test_the_readme_has_runnable_examples() -> None:
    assert sum(f == "README.md" for f, _, _ in BLOCKS) >= 2


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from vidlang.cli.main import main
    from vidlang.engine import load_config, train

    root = tmp_path_factory.mktemp("docs")
    data = synth_tiny(root / "synthvl")
    train_tiny_mmn(data, root / "runs" / "mmn")
    train(load_config("retrieval/synthvl_cpu", [*TINY_RETRIEVAL, f"data.root={data}"]), root / "runs" / "dual")
    main(["index", "build", "--ckpt", str(root / "runs" / "dual"), "--features", str(data / "features.h5"),
          "--out", str(root / "my_index")])
    return root


@pytest.mark.parametrize(("source", "line", "code"), BLOCKS, ids=[f"{f}:{n}" for f, n, _ in BLOCKS])
def test_documented_block_runs(workspace: Path, monkeypatch: pytest.MonkeyPatch, source: str, line: int,
                               code: str) -> None:
    monkeypatch.chdir(workspace)
    # line offset so a traceback points at the documentation line
    exec(compile("\n" * line + code, str(REPO / source), "exec"), {"__name__": "__docs__"})
