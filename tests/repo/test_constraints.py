"""constraints.txt covers every dependency of pyproject.toml with an exact pin that satisfies the
loose pin, ``make install`` uses it, and (unless ``make test-latest`` runs the suite on purpose
without it) the installed versions are the pinned ones: dependency drift fails here, not for
a user."""

from __future__ import annotations

import os
import re
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from repo_scripts import REPO, load_repo_module

freeze = load_repo_module("scripts/freeze_constraints.py")
CONSTRAINTS = REPO / "constraints.txt"


def _requirements() -> list[Requirement]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = [*project["dependencies"], *(s for g in project["optional-dependencies"].values() for s in g)]
    return [Requirement(s) for s in specs]


def test_every_dependency_is_pinned_within_its_loose_pin() -> None:
    pins = freeze.read_pins(CONSTRAINTS)
    for req in _requirements():
        name = freeze.normalise(req.name)
        if freeze.TORCH_OWNED.match(name):
            assert name not in pins, f"{name} is chosen by TORCH_SPEC and must not be pinned"
            continue
        assert name in pins, f"constraints.txt does not pin {req.name}; run `make constraints`"
        assert req.specifier.contains(Version(pins[name]), prereleases=True), \
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {req}"
    assert "vidlang" not in pins


def test_make_install_uses_the_constraints() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"pip install .*-e \"\.\[dev[^\]]*\]\" -c constraints\.txt", makefile)
    assert re.search(r"^test-latest:", makefile, re.M) and re.search(r"^constraints:", makefile, re.M)


@pytest.mark.skipif(bool(os.environ.get("VIDLANG_UNCONSTRAINED")), reason="make test-latest: newest versions")
def test_installed_versions_are_the_pinned_ones() -> None:
    pins = freeze.read_pins(CONSTRAINTS)
    drift = []
    for req in _requirements():
        name = freeze.normalise(req.name)
        if name not in pins:
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            drift.append(f"{name} not installed")
            continue
        if Version(installed) != Version(pins[name]):
            drift.append(f"{name} {installed} (pinned {pins[name]})")
    assert not drift, f"installed versions differ from constraints.txt: {drift}; `make install` " \
                      "re-installs the pins, `make constraints` re-pins"
