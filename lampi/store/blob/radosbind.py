"""Finding librados' Python binding.

No usable binding is on PyPI. Debian and Ubuntu ship one in ``python3-rados``: a single
extension module, ``rados.cpython-311-x86_64-linux-gnu.so`` under
``/usr/lib/python3/dist-packages``, built for the distribution's Python (3.11 on Debian
12). A venv (or pyenv's Python) does not see that directory, so ``load()`` imports the
module when it is importable already, and otherwise loads it from the directories where
distributions put it, provided it was built for the running interpreter (its file name
ends in one of ``importlib.machinery.EXTENSION_SUFFIXES``). See docs/scale-out.md.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SEARCH_DIRS = (
    "/usr/lib/python3/dist-packages",  # Debian, Ubuntu
    f"/usr/lib64/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages",  # Fedora, RHEL
    f"/usr/lib/python{sys.version_info[0]}.{sys.version_info[1]}/site-packages",
)


class RadosUnavailable(RuntimeError):
    pass


def find() -> Path | None:
    """The distribution's ``rados`` extension built for this interpreter, if installed."""
    for d in SEARCH_DIRS:
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            p = Path(d) / f"rados{suffix}"
            if p.is_file():
                return p
    return None


def load() -> ModuleType:
    """The ``rados`` module; RadosUnavailable saying what to install when there is none."""
    mod = sys.modules.get("rados")
    if mod is not None:
        return mod
    try:
        import rados  # type: ignore[import-not-found]

        return rados  # type: ignore[no-any-return]
    except ImportError:
        pass
    path = find()
    if path is None:
        others = sorted({str(p) for d in SEARCH_DIRS for p in Path(d).glob("rados.*.so")})
        hint = (f" (found {', '.join(others)}, built for another Python: run lampi with that Python's "
                f"version, here {sys.version_info[0]}.{sys.version_info[1]})") if others else ""
        raise RadosUnavailable(
            "the librados Python binding is not installed: on Debian/Ubuntu `apt-get install python3-rados` "
            f"and run lampi with the system's Python version (Debian 12: 3.11){hint}")
    spec = importlib.util.spec_from_file_location("rados", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["rados"] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop("rados", None)
        raise
    return mod
