"""pytest fixtures giving a test a real lampi server (loaded by ``pip install lampi``).

Fixtures (all start ``lampi serve`` on a free loopback port with a fresh throw-away
store, and stop it afterwards — also when a test fails or the run is interrupted):

``lampi_server``
    a :class:`lampi.testing.Server` for the whole session (with pytest-xdist: one per
    worker). Its ``os_env``/``env_for()``, ``admin`` credentials, ``swift()``, ``s3()``,
    ``make_project()``, ``make_user()`` and ``make_s3_key()`` give the rest.
``lampi_server_fn``
    a server of the test's own, for tests that need an empty store.
``lampi_env``
    the admin's environment: the OpenStack RC file's ``OS_*`` variables and
    ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_ENDPOINT_URL``, for
    ``swift``, ``openstack``, ``rclone``, ``aws`` run with ``subprocess``.
``lampi_swift``
    a ``swiftclient.Connection`` logged in with Keystone v3 as the admin.
``lampi_s3`` / ``lampi_s3_resource``
    a boto3 S3 client / service resource with the admin's key pair.

Options: ``--lampi-workers N`` (or the ``lampi_workers`` ini value), ``--lampi-arg ARG``
(repeatable; more ``lampi serve`` options, e.g. ``--lampi-arg=--bucket-namespace=project``),
``--lampi-durable`` to keep fsync on (the fixtures serve ``--ephemeral`` by default).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from lampi.testing import Server


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lampi", "lampi object storage server fixtures")
    group.addoption("--lampi-workers", type=int, default=None, help="worker processes per lampi server [default 1]")
    group.addoption("--lampi-arg", action="append", default=[], metavar="ARG",
                    help="extra `lampi serve` option for the fixtures' servers (repeatable)")
    group.addoption("--lampi-durable", action="store_true", default=False,
                    help="serve with fsync (not --ephemeral) in the fixtures' servers")
    parser.addini("lampi_workers", "worker processes per lampi server", default="1")
    parser.addini("lampi_args", "extra `lampi serve` options for the fixtures' servers", type="args", default=[])


def _server(config: pytest.Config) -> Server:
    workers = config.getoption("--lampi-workers") or int(config.getini("lampi_workers") or 1)
    args = [*config.getini("lampi_args"), *config.getoption("--lampi-arg")]
    return Server(workers=workers, args=args, ephemeral=not config.getoption("--lampi-durable"))


@pytest.fixture(scope="session")
def lampi_server(pytestconfig: pytest.Config) -> Iterator[Server]:
    """One lampi server for the session (per pytest-xdist worker)."""
    srv = _server(pytestconfig).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def lampi_server_fn(pytestconfig: pytest.Config) -> Iterator[Server]:
    """A lampi server of this test's own."""
    srv = _server(pytestconfig).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="session")
def lampi_env(lampi_server: Server) -> dict[str, str]:
    """``OS_*`` and ``AWS_*`` variables for command-line clients, as the admin."""
    return lampi_server.env_for()


@pytest.fixture
def lampi_swift(lampi_server: Server) -> Iterator[Any]:
    """A ``swiftclient.Connection`` (Keystone v3) as the admin."""
    conn = lampi_server.swift()
    try:
        yield conn
    finally:
        conn.close()


@pytest.fixture
def lampi_s3(lampi_server: Server) -> Any:
    """A boto3 S3 client with the admin's key pair."""
    return lampi_server.s3()


@pytest.fixture
def lampi_s3_resource(lampi_server: Server) -> Any:
    """A boto3 S3 service resource with the admin's key pair."""
    return lampi_server.s3_resource()
