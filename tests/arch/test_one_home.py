"""Issue 13, one home per idea: the temporal-IoU intersection and greedy NMS are written once,
in ``vidlang.ops``; everything else calls them."""

from __future__ import annotations

import re
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "vidlang"

# an interval intersection: min(ends) - max(starts), in NumPy, torch or plain Python
INTERSECTION = re.compile(
    r"(np|torch)\.minimum\([^)]*\)\s*-\s*(np|torch)\.maximum\("
    r"|\bmin\([^)]*\)\s*-\s*max\("
    r"|_into_first\(np\.subtract, np\.minimum"
)
NMS_DEF = re.compile(r"^\s*def [a-z_]*nms[a-z_]*\(", re.M)


def _sources() -> dict[str, str]:
    return {str(f.relative_to(SRC)): f.read_text(encoding="utf-8") for f in SRC.rglob("*.py")}


def test_the_intersection_of_two_windows_is_computed_only_in_ops_windows() -> None:
    found = {name for name, text in _sources().items()
             for line in text.splitlines()
             if INTERSECTION.search(line) and not line.lstrip().startswith(("#", '"'))}
    assert found == {"ops/windows.py"}


def test_nms_is_defined_only_in_ops_nms() -> None:
    found = {name for name, text in _sources().items() if NMS_DEF.search(text)}
    # the CLI's --nms option parser is named after the flag, not an NMS implementation
    assert found - {"cli/evaluate.py"} == {"ops/nms.py"}


def test_the_patterns_see_a_copy() -> None:
    """The check can fail: a re-written intersection or NMS is found."""
    assert INTERSECTION.search("inter = np.minimum(e1, e2) - np.maximum(s1, s2)")
    assert INTERSECTION.search("    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))")
    assert NMS_DEF.search("def greedy_nms(windows, thresh):")
