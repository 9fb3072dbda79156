"""The conformance runners (conformance/<suite>/run, scripts without .py) and their shared
harness, imported as modules for the tests of their parts."""

from __future__ import annotations

import importlib.util
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

CONF_DIR = Path(__file__).resolve().parents[1] / "conformance"
if str(CONF_DIR) not in sys.path:
    sys.path.insert(0, str(CONF_DIR))
import harness  # noqa: E402


def load_runner(name: str) -> ModuleType:
    """conformance/<name>/run as a module."""
    modname = "lampi_conformance_" + name.replace("-", "_")
    if modname in sys.modules:
        return sys.modules[modname]
    loader = SourceFileLoader(modname, str(CONF_DIR / name / "run"))
    spec = importlib.util.spec_from_loader(modname, loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[modname] = mod  # dataclasses look their module up
    loader.exec_module(mod)
    return mod


swift = load_runner("swift-functional")
s3 = load_runner("s3-tests")

__all__ = ["harness", "s3", "swift", "CONF_DIR"]
