"""A pytest plugin the conformance runners load into the suites (``-p``, from PYTHONPATH):
each test case's node id and marker names go into the junit file as properties
(``nodeid``, ``markers``), so the runner's tables can group by module or marker without
touching the suite's own tree."""

from __future__ import annotations

import pytest


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        names = sorted({m.name for m in item.iter_markers()} - {"parametrize", "usefixtures", "timeout"})
        item.user_properties.append(("nodeid", item.nodeid))
        item.user_properties.append(("markers", ",".join(names)))
