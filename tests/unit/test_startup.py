"""lampi.gateway.startup: the start-up steps load no aiohttp (so the server's modules can
load in a thread beside them), and a preload's import error reaches its caller."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lampi.gateway.startup import Preload


def test_startup_loads_no_aiohttp() -> None:
    """What the start-up imports leaves aiohttp (the server's modules) to the preload;
    were it imported here, the two would no longer overlap."""
    code = "import sys, lampi.cli.main, lampi.gateway.startup, lampi.log; print('aiohttp' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "False"


def test_preload_returns_the_module() -> None:
    assert Preload("json").module() is sys.modules["json"]


def test_preload_error_is_raised_in_the_caller(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lampi_broken_for_test.py").write_text(textwrap.dedent("""
        raise RuntimeError("broken on import")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    preload = Preload("lampi_broken_for_test")
    with pytest.raises(RuntimeError, match="broken on import"):
        preload.module()
    assert "lampi_broken_for_test" not in sys.modules

