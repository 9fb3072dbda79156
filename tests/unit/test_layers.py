"""The layers of docs/architecture.md, enforced: import-linter's contracts in
pyproject.toml ([tool.importlinter]) hold for lampi as it is, and they catch a wrong
import (checked on a copy of the package with one added)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import lampi

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = Path(lampi.__file__).resolve().parent
# lint-imports in a child process: the root package is found on its sys.path (PYTHONPATH)
LINT = "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports(no_cache=True, no_logo=True))"


def test_the_import_contracts_are_kept() -> None:
    # in a child process, as the others: lint_imports in this one leaves the logging
    # configuration changed (a later caplog test saw no records)
    proc = subprocess.run([sys.executable, "-c", LINT], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, PYTHONPATH=str(PACKAGE.parent)))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def _lint_copy(tmp_path: Path, module: str, line: str) -> subprocess.CompletedProcess[str]:
    """lint-imports on a copy of lampi where ``module`` (a path below lampi/) has ``line`` added."""
    shutil.copytree(PACKAGE, tmp_path / "lampi", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "lampi" / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    env = dict(os.environ, PYTHONPATH=str(tmp_path), PYTHONDONTWRITEBYTECODE="1")
    return subprocess.run([sys.executable, "-c", LINT], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=240)


def test_s3_importing_swift_breaks_the_contracts(tmp_path: Path) -> None:
    proc = _lint_copy(tmp_path, "s3/xml.py", "from lampi.swift import acl  # noqa: E402,F401")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "The protocol front-ends do not import each other BROKEN" in proc.stdout
    assert "Layers: imports point down BROKEN" in proc.stdout
    assert "lampi.s3.xml -> lampi.swift.acl" in proc.stdout


def test_core_importing_a_front_end_breaks_the_layers(tmp_path: Path) -> None:
    proc = _lint_copy(tmp_path, "core/numbers.py", "import lampi.http.context  # noqa: E402,F401")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Layers: imports point down BROKEN" in proc.stdout
    assert "lampi.core.numbers -> lampi.http.context" in proc.stdout


def test_a_cycle_inside_a_package_breaks_the_contracts(tmp_path: Path) -> None:
    proc = _lint_copy(tmp_path, "swift/errors.py", "from lampi.swift import handlers  # noqa: E402,F401")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "No cycles between the modules of a package BROKEN" in proc.stdout
    assert "No cycles are allowed in lampi.swift" in proc.stdout
