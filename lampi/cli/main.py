"""``lampi`` command line: serve, init, openrc, domain/project/user/role/credential administration, fsck,
migrate.

Every setting is a flag, a ``LAMPI_*`` environment variable, or a key in the TOML
file given with ``--config`` / ``LAMPI_CONFIG``. Admin commands work directly on the
data dir, also while a server is running on it (SQLite WAL allows that). Only
``lampi serve`` and ``lampi init`` create a data dir; every other command refuses
one that does not exist (exit status 2), so that a mistyped ``--data-dir`` or
another working directory cannot quietly start a second, empty store.

The commands live by group in this package: ``serve`` (serve, init, openrc),
``identity`` (domain, project, user, role), ``credentials``, ``keys`` (kms, sse),
``db`` (the metadata database's schema), ``fsck``, ``migrate``, ``bench``; ``common`` has what they
share. This module is the root group.
"""

from __future__ import annotations

import sys

import click

from lampi import __version__
from lampi.cli import bench, credentials, db, fsck, identity, keys, migrate, serve
from lampi.cli.common import CONFIG_HELP
from lampi.core import errors


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lampi")
@click.option("--config", envvar="LAMPI_CONFIG", default=None, help=CONFIG_HELP)
def cli(config: str | None) -> None:
    """lampi — object storage speaking the OpenStack Swift API (with Keystone v3 login)
    and the S3 API over the same buckets: a self-hostable twin of CSC's Allas.

    Start a server with `lampi serve` (its first start creates the data dir, an admin
    user and an OpenStack RC file; `lampi init` does that alone), load the credentials
    with `eval "$(lampi openrc)"`
    and use swift, openstack, rclone or python-swiftclient; S3 keys (for aws, s3cmd,
    boto3) come from `openstack ec2 credentials create` or `lampi credential create`.
    The admin commands (project, user, role, credential, fsck) work on an existing
    data dir, also while the server runs.
    """
    from lampi.store.fsmodes import private_umask

    private_umask()  # whatever a command creates in the data dir is private (0600/0700)


for command in (serve.serve, serve.init, serve.openrc, identity.domain, identity.project, identity.user,
                identity.role, credentials.credential, keys.kms, keys.sse, keys.token, keys.master_key, db.db, fsck.fsck,
                migrate.migrate,
                bench.bench):
    cli.add_command(command)


def main() -> None:
    try:
        cli(prog_name="lampi")
    except Exception as exc:
        # A full disk (data dir, metadata store) is one line for the operator, not a traceback.
        from lampi.store.space import full_message, is_full

        if not is_full(exc):
            raise
        msg = exc.message if isinstance(exc, errors.DomainError) else full_message(
            getattr(exc, "filename", None) or "the data dir")
        click.echo(f"Error: {msg}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
