import subprocess
import sys

import pytest

from vidlang.errors import DataError
from vidlang.registry import Registry, RegistryError


def test_registry_lookup_and_unknown_name():
    reg: Registry[int] = Registry("widget")
    reg.register("a")(1)
    assert reg.get("a") == 1
    with pytest.raises(RegistryError, match="unknown widget 'b'; known: a"):
        reg.get("b")
    with pytest.raises(RegistryError, match="registered twice"):
        reg.register("a")(2)


def test_data_error_names_file_and_line():
    e = DataError("start > end", "x/ann.txt", 7)
    assert str(e) == "x/ann.txt:7: start > end"


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "vidlang.cli.main", "--help"],
                         capture_output=True, text=True, check=True)
    assert "vidlang" in out.stdout
