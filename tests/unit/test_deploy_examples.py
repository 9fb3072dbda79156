"""The deployment examples of docs/examples (docs/scale-out.md, "A production
deployment") name only settings and flags lampi has: the TOML file loads, the compose
file's LAMPI_* variables are settings with valid values, the systemd unit's command line
is one `lampi serve` accepts. (Running them needs systemd, a container runtime and a Ceph
cluster: not here.)"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml
from click.testing import CliRunner

from lampi.cli.main import cli
from lampi.config import ENV_PREFIX, load_settings

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_toml_example_loads_with_every_setting_known() -> None:
    s = load_settings(config_file=str(EXAMPLES / "lampi.toml"), environ={})
    assert s.meta_url.startswith("postgresql://") and s.blob_url.startswith("rados://")
    assert s.master_key_file == "/etc/lampi/master.key"
    assert s.console_port == 8081 and s.metrics_port == 9100


def test_compose_gateways_use_known_settings() -> None:
    doc = yaml.safe_load((EXAMPLES / "compose.yaml").read_text())
    gateways = [name for name, svc in doc["services"].items() if "LAMPI_META_URL" in svc.get("environment", {})]
    assert gateways == ["gateway1", "gateway2"]
    env = dict(doc["services"]["gateway1"]["environment"])
    env["LAMPI_ADMIN_PASSWORD"] = "a-password-of-the-operator"  # ${...:?} is compose's, filled at up
    assert all(k.startswith(ENV_PREFIX) for k in env)
    s = load_settings(environ={k: str(v) for k, v in env.items()})
    assert s.meta_url.startswith("postgresql://") and s.blob_url.startswith("rados://")
    for key in env:  # each variable is a setting: load_settings ignores unknown ones in env
        assert hasattr(s, key[len(ENV_PREFIX):].lower()), key
    assert doc["secrets"]["master_key"]["file"] == "./master.key"
    assert "proxy_request_buffering off" in doc["configs"]["nginx_conf"]["content"]


def test_systemd_unit_runs_a_command_lampi_serve_accepts() -> None:
    unit = (EXAMPLES / "lampi.service").read_text()
    exec_start = re.search(r"^ExecStart=(.+)$", unit, re.M)
    assert exec_start
    argv = shlex.split(exec_start.group(1))
    assert argv[0].endswith("/lampi") and argv[1] == "serve"
    # the same options, with --help: click parses (and refuses unknown ones) before helping
    result = CliRunner().invoke(cli, [*argv[1:], "--help"])
    assert result.exit_code == 0, result.output
    bad = CliRunner().invoke(cli, ["serve", "--no-such-option", "--help"])
    assert bad.exit_code == 2  # proves the check above would catch a misspelt option
    assert re.search(r"^ExecReload=/bin/kill -HUP \$MAINPID$", unit, re.M)
