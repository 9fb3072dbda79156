"""``lampi serve``, ``lampi init``, ``lampi openrc``: run the server, make a data dir,
print its OpenStack RC file."""

from __future__ import annotations

import dataclasses
import shutil
import sys
from pathlib import Path
from typing import Any

import click

from lampi import __version__
from lampi.cli.common import (
    blob_url_option,
    default_policy_option,
    data_dir_option,
    policies_option,
    require_store,
    settings_of,
)
from lampi.config import Settings


@click.command()
@click.option("--host", envvar="LAMPI_HOST", default=None, help="Address to listen on [env LAMPI_HOST; default 127.0.0.1].")
@click.option("--port", envvar="LAMPI_PORT", type=int, default=None, help="TCP port [env LAMPI_PORT; default 8080].")
@data_dir_option
@click.option("--workers", envvar="LAMPI_WORKERS", default=None, metavar="N|auto",
              help="Worker processes sharing the port [env LAMPI_WORKERS; default auto: one per CPU core].")
@click.option("--public-url", envvar="LAMPI_PUBLIC_URL", default=None,
              help="Public base URL when behind a proxy, e.g. https://objects.example.org [env LAMPI_PUBLIC_URL].")
@click.option("--region", envvar="LAMPI_REGION", default=None, help="Region in the catalog [env LAMPI_REGION; default regionOne].")
@click.option("--token-ttl", envvar="LAMPI_TOKEN_TTL", type=int, default=None,
              help="Token lifetime in seconds [env LAMPI_TOKEN_TTL; default 28800 = 8 h].")
@click.option("--log-level", envvar="LAMPI_LOG_LEVEL", default=None,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log level [env LAMPI_LOG_LEVEL; default info].")
@click.option("--log-format", envvar="LAMPI_LOG_FORMAT", default=None, type=click.Choice(["auto", "json", "console"]),
              help="Log format [env LAMPI_LOG_FORMAT; default auto: console on a TTY, else JSON lines].")
@click.option("--s3-domain", envvar="LAMPI_S3_DOMAIN", default=None,
              help="Serve S3 virtual-hosted style at <bucket>.DOMAIN [env LAMPI_S3_DOMAIN; default: path style only].")
@click.option("--s3-port", envvar="LAMPI_S3_PORT", type=int, default=None,
              help="Also listen on this port for S3 only [env LAMPI_S3_PORT; default none].")
@click.option("--console-port", envvar="LAMPI_CONSOLE_PORT", type=int, default=None,
              help="Port of the web console, on the same host [env LAMPI_CONSOLE_PORT; default 8081; 0: off].")
@click.option("--console-segment-size", envvar="LAMPI_CONSOLE_SEGMENT_SIZE", type=int, default=None,
              help="The console uploads larger files in segments of this many bytes, resumable "
                   "[env LAMPI_CONSOLE_SEGMENT_SIZE; default 1073741824 = 1 GiB; 1 MiB to 5 GiB].")
@click.option("--trusted-proxies", envvar="LAMPI_TRUSTED_PROXIES", default=None,
              help="Proxies (IPs/CIDRs, comma-separated) whose X-Forwarded-Host is trusted [env LAMPI_TRUSTED_PROXIES].")
@click.option("--min-free-space", envvar="LAMPI_MIN_FREE_SPACE", default=None,
              help="Free space uploads must leave on the data dir's filesystem, bytes (K/M/G/T) or percent; "
                   "less: 507 Insufficient Storage [env LAMPI_MIN_FREE_SPACE; default 1%].")
@click.option("--header-timeout", envvar="LAMPI_HEADER_TIMEOUT", type=float, default=None,
              help="Seconds to send a request's headers, then 408 [env LAMPI_HEADER_TIMEOUT; default 20; 0: none].")
@click.option("--body-timeout", envvar="LAMPI_BODY_TIMEOUT", type=float, default=None,
              help="Seconds a request body may stall, then 408 [env LAMPI_BODY_TIMEOUT; default 60; 0: none].")
@click.option("--keepalive-timeout", envvar="LAMPI_KEEPALIVE_TIMEOUT", type=float, default=None,
              help="Seconds an idle kept-alive connection stays open [env LAMPI_KEEPALIVE_TIMEOUT; default 75].")
@click.option("--max-connections", envvar="LAMPI_MAX_CONNECTIONS", type=int, default=None,
              help="Connections per worker [env LAMPI_MAX_CONNECTIONS; default 0: from the open-file limit].")
@click.option("--bucket-namespace", envvar="LAMPI_BUCKET_NAMESPACE", default=None,
              type=click.Choice(["global", "project"]),
              help="Container/bucket names unique in the whole service (global, as Allas) or per project "
                   "(project, as RGW tenants) [env LAMPI_BUCKET_NAMESPACE; default global].")
@policies_option
@default_policy_option
@blob_url_option
@click.option("--inline-max", envvar="LAMPI_INLINE_MAX", type=int, default=None, metavar="BYTES",
              help="Keep objects of at most this many bytes (length known, not encrypted) in the metadata store, "
                   "written in the transaction recording them: no blob of their own [env LAMPI_INLINE_MAX; "
                   "default -1: 65536; 0: never; at most 1048576].")
@click.option("--storage-url-form", envvar="LAMPI_STORAGE_URL_FORM", default=None, type=click.Choice(["allas", "swift"]),
              help="Catalog object-store URL: allas, <base>/swift/v1/AUTH_<id>; swift, <base>/v1/AUTH_<id> (both are "
                   "served) [env LAMPI_STORAGE_URL_FORM; default allas].")
@click.option("--sse-c-require-tls/--no-sse-c-require-tls", "sse_c_require_tls", default=None,
              help="Refuse S3 SSE-C keys sent over plain HTTP (behind a TLS proxy: --trusted-proxies and "
                   "X-Forwarded-Proto: https) [env LAMPI_SSE_C_REQUIRE_TLS; default: require].")
@click.option("--ephemeral", is_flag=True, default=None,
              help="A throw-away store for tests: no fsync, the data dir (a new temporary one unless --data-dir "
                   "names an empty or missing one) deleted at exit [env LAMPI_EPHEMERAL].")
@click.option("--admin-password", envvar="LAMPI_ADMIN_PASSWORD", default=None,
              help="Fixed password of user admin, set at every start [env LAMPI_ADMIN_PASSWORD; default: random "
                   "at the first start, in the RC file].")
@click.option("--s3-access-key", envvar="LAMPI_S3_ACCESS_KEY", default=None,
              help="Fixed S3 access key of user admin in project admin, made at every start; with "
                   "--s3-secret-key [env LAMPI_S3_ACCESS_KEY].")
@click.option("--s3-secret-key", envvar="LAMPI_S3_SECRET_KEY", default=None,
              help="Secret of --s3-access-key [env LAMPI_S3_SECRET_KEY].")
@click.option("--metrics-port", envvar="LAMPI_METRICS_PORT", type=int, default=None,
              help="Serve /metrics (Prometheus), /healthcheck and /readyz on this port of their own "
                   "[env LAMPI_METRICS_PORT; default none].")
@click.option("--metrics-token", envvar="LAMPI_METRICS_TOKEN", default=None,
              help="Bearer token /metrics requires [env LAMPI_METRICS_TOKEN; default: none required].")
@click.option("--metrics-usage/--no-metrics-usage", "metrics_usage", default=None,
              help="Per-project usage gauges in /metrics [env LAMPI_METRICS_USAGE; default off].")
@click.option("--tls-cert", envvar="LAMPI_TLS_CERT", default=None,
              help="PEM certificate (chain): serve HTTPS on every listener; with --tls-key; reloaded on SIGHUP "
                   "[env LAMPI_TLS_CERT].")
@click.option("--tls-key", envvar="LAMPI_TLS_KEY", default=None, help="PEM private key of --tls-cert [env LAMPI_TLS_KEY].")
@click.option("--tls-ca", envvar="LAMPI_TLS_CA", default=None,
              help="CA file for the RC file's OS_CACERT [env LAMPI_TLS_CA; default: --tls-cert when self-signed].")
@click.pass_context
def serve(ctx: click.Context, **flags: Any) -> None:
    """Run the server: Keystone v3, the Swift API and the S3 API on one port.

    Zero config: SQLite metadata and files under the data dir. The first start
    creates domain Default, project `admin` and user `admin` with a random password,
    and writes an OpenStack RC file v3 (see `lampi openrc`). S3 is served path style
    on the same port, virtual-hosted style with --s3-domain, and on a port of its own
    with --s3-port.
    """
    import signal

    # A stop signal while the server starts is noted, not fatal: the server stops at its
    # next start-up step and exits 0 (lampi.gateway.startup).
    early: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: early.append(signum))

    from lampi.gateway import startup
    from lampi.log import setup_logging

    settings = settings_of(ctx, **flags)
    setup_logging(settings.log_level, settings.log_format)
    throwaway = _ephemeral_dir(settings) if settings.ephemeral else None
    if throwaway is not None:
        settings = dataclasses.replace(settings, data_dir=str(throwaway))
    # the server's modules (aiohttp, the front-ends: most of the start-up's CPU) load in a
    # thread while the start-up steps below bind, bootstrap and clear (lampi.gateway.startup);
    # not before the settings are known good: a usage error exits with no import in flight
    server = startup.Preload("lampi.gateway.server")

    def announce(s: Settings, boot: Any) -> None:
        dd = str(s.data_path.resolve())
        msg = [
            f"lampi {__version__} listening on {s.base_url()} ({s.workers} worker{'s' if s.workers != 1 else ''})",
            f"  Keystone v3:  {s.base_url()}/v3",
            f"  Swift:        {s.base_url()}{'/swift' if s.storage_url_form == 'allas' else ''}/v1/AUTH_{boot.project.id}",
            f"  S3:           {s.base_url()}" + (f" and port {s.s3_port}" if s.s3_port else "")
            + (f" (virtual hosts *.{s.s3_domain})" if s.s3_domain else ""),
            *([f"  Console:      {s.console_url()}/"] if s.console_port else []),
            *([f"  metrics:      {s.scheme}://{s.host}:{s.metrics_port}/metrics (and /readyz)"]
              if s.metrics_port else []),
            f"  readiness:    {s.base_url()}/_lampi/ready",
            f"  data dir:     {dd}",
            f"  credentials:  eval \"$(lampi openrc --data-dir {dd})\"",
        ]
        if boot.created:
            msg.append(f"  first start: created project '{boot.project.name}' and user '{boot.user.name}' "
                       f"(password in {dd}/openrc.sh)")
        if s.ephemeral:
            msg.append("  EPHEMERAL: no fsync, and the data dir is deleted when the server stops")
        click.echo("\n".join(msg), err=True)

    try:
        started = startup.prepare(settings, stopped=lambda: bool(early))
        code = started if isinstance(started, int) else server.module().serve(started, announce)
    finally:
        if throwaway is not None:
            shutil.rmtree(throwaway, ignore_errors=True)
    sys.exit(code)


def _ephemeral_dir(settings: Settings) -> Path:
    """The data dir of ``lampi serve --ephemeral``: a new temporary directory when no data
    dir was given, else the given one if it is missing or empty (never one holding a
    store, or anything else: it is deleted at exit)."""
    import tempfile

    if settings.data_dir == Settings.__dataclass_fields__["data_dir"].default:
        return Path(tempfile.mkdtemp(prefix="lampi-ephemeral-"))
    path = settings.data_path.resolve()
    if path.exists():
        if not path.is_dir():
            raise click.UsageError(f"--ephemeral: {path} is not a directory")
        if (path / "meta.db").exists():
            raise click.UsageError(f"--ephemeral: {path} holds a lampi store, which --ephemeral would delete at "
                                   "exit; give a new directory, or none for a temporary one")
        if any(path.iterdir()):
            raise click.UsageError(f"--ephemeral: {path} is not empty, and --ephemeral deletes its data dir at exit; "
                                   "give a new directory, or none for a temporary one")
    return path


@click.command()
@click.option("--host", envvar="LAMPI_HOST", default=None,
              help="Address the server will listen on, for the RC file's URL [env LAMPI_HOST; default 127.0.0.1].")
@click.option("--port", envvar="LAMPI_PORT", type=int, default=None,
              help="Port the server will listen on, for the RC file's URL [env LAMPI_PORT; default 8080].")
@click.option("--public-url", envvar="LAMPI_PUBLIC_URL", default=None,
              help="Public base URL, for the RC file's URL [env LAMPI_PUBLIC_URL].")
@click.option("--region", envvar="LAMPI_REGION", default=None,
              help="Region in the RC file [env LAMPI_REGION; default regionOne].")
@data_dir_option
@click.pass_context
def init(ctx: click.Context, **flags: Any) -> None:
    """Create a data dir without starting a server.

    The same first-start set-up as `lampi serve`: the metadata store, domain Default,
    project `admin`, user `admin` with a random password and the OpenStack RC file v3
    (`lampi openrc`). On an existing data dir nothing is created; as `lampi serve`
    does, the RC file is pointed at the given host and port (or, if it was lost,
    written again with a new admin password).
    """
    from lampi.gateway.startup import bootstrap

    settings = settings_of(ctx, **flags)
    boot = bootstrap(settings)
    dd = settings.data_path.resolve()
    if boot.created:
        click.echo(f"created lampi data dir {dd}: project '{boot.project.name}', user '{boot.user.name}' "
                   f"(password in {dd / 'openrc.sh'})")
    else:
        click.echo(f"lampi data dir {dd} exists already; nothing created")
    click.echo(f"  credentials:  eval \"$(lampi openrc --data-dir {dd})\"")
    click.echo(f"  start:        lampi serve --data-dir {dd}")


@click.command()
@data_dir_option
@click.pass_context
def openrc(ctx: click.Context, data_dir: str | None) -> None:
    """Print the admin's OpenStack RC file v3: eval "$(lampi openrc)"."""
    settings = settings_of(ctx, data_dir=data_dir)
    require_store(settings)
    path = settings.data_path / "openrc.sh"
    if not path.exists():
        raise click.ClickException(f"{path.resolve()} not found: `lampi serve` or `lampi init` writes it anew "
                                   "(with a new admin password)")
    click.echo(path.read_text(), nl=False)


# -- projects ---------------------------------------------------------------------------
