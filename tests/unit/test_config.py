"""Settings: defaults < TOML file < LAMPI_* environment < overrides (flags)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lampi.config import Settings, cpu_cores, load_settings, settings_help


def toml(tmp_path: Path, text: str) -> str:
    p = tmp_path / "lampi.toml"
    p.write_text(text)
    return str(p)


def test_defaults():
    s = load_settings(environ={})
    assert s == Settings()
    assert (s.host, s.port, s.data_dir, s.workers) == ("127.0.0.1", 8080, "./lampi-data", cpu_cores())
    assert (s.region, s.token_ttl, s.admin_project, s.public_url) == ("regionOne", 8 * 3600, "admin", "")
    assert s.max_object_size == 5 * 1024**3
    assert s.base_url() == "http://127.0.0.1:8080"
    assert {name for name, _h, _d in settings_help()} >= {"host", "port", "data_dir", "workers"}
    assert all(h for _n, h, _d in settings_help())


def test_base_url():
    assert Settings(host="0.0.0.0", port=9000).base_url() == "http://127.0.0.1:9000"
    assert Settings(host="::1", port=9000).base_url() == "http://[::1]:9000"
    assert Settings(public_url="https://objects.example.org/").base_url() == "https://objects.example.org"


def test_precedence(tmp_path):
    cfg = toml(tmp_path, 'host = "0.0.0.0"\nport = 1111\nworkers = 3\nregion = "toml-region"\ntoken-ttl = 60\n')
    s = load_settings(config_file=cfg, environ={})
    assert (s.host, s.port, s.workers, s.region, s.token_ttl) == ("0.0.0.0", 1111, 3, "toml-region", 60)

    env = {"LAMPI_PORT": "2222", "LAMPI_REGION": "env-region", "LAMPI_WORKERS": ""}
    s = load_settings(config_file=cfg, environ=env)
    assert (s.host, s.port, s.workers, s.region) == ("0.0.0.0", 2222, 3, "env-region")

    s = load_settings({"port": 3333, "host": None}, config_file=cfg, environ=env)
    assert (s.host, s.port, s.region) == ("0.0.0.0", 3333, "env-region")  # None = flag not given


def test_config_file_from_env_and_lampi_table(tmp_path):
    cfg = toml(tmp_path, '[lampi]\nport = 4444\nshutdown_timeout = 2\n')
    s = load_settings(environ={"LAMPI_CONFIG": cfg})
    assert s.port == 4444
    assert s.shutdown_timeout == 2.0 and isinstance(s.shutdown_timeout, float)


def test_env_values_are_converted():
    s = load_settings(environ={"LAMPI_WORKERS": "4", "LAMPI_SHUTDOWN_TIMEOUT": "1.5", "LAMPI_DATA_DIR": "/srv/x"})
    assert (s.workers, s.shutdown_timeout, s.data_dir) == (4, 1.5, "/srv/x")
    # unrelated variables are ignored
    assert load_settings(environ={"LAMPI_NOT_A_SETTING": "1", "PORT": "1"}) == Settings()


def test_unknown_toml_key(tmp_path):
    with pytest.raises(ValueError, match="unknown setting 'prot'"):
        load_settings(config_file=toml(tmp_path, "prot = 1\n"), environ={})


def test_invalid_toml(tmp_path):
    with pytest.raises(ValueError):
        load_settings(config_file=toml(tmp_path, "port = = 1\n"), environ={})


@pytest.mark.parametrize("raw", ["abc", "8080.5", "", "0x10"])
def test_bad_int_in_env(raw):
    env = {"LAMPI_PORT": raw}
    if raw == "":
        assert load_settings(environ=env).port == 8080  # empty means unset
        return
    with pytest.raises(ValueError, match="port"):
        load_settings(environ=env)


@pytest.mark.parametrize("value", ['"abc"', "80.5", "true", "[1]", '"8080.0"'])
def test_bad_int_in_toml(tmp_path, value):
    with pytest.raises(ValueError, match="port"):
        load_settings(config_file=toml(tmp_path, f"port = {value}\n"), environ={})


@pytest.mark.parametrize("value", ["1", "true", "[1]"])
def test_bad_str_in_toml(tmp_path, value):
    with pytest.raises(ValueError, match="host"):
        load_settings(config_file=toml(tmp_path, f"host = {value}\n"), environ={})


def test_workers_auto_is_one_per_core(tmp_path):
    """workers = auto (the default, as Swift's): one worker per core this process may use;
    a number still overrides it, from every source."""
    import os
    cores = len(os.sched_getaffinity(0))
    assert cpu_cores() == cores
    assert Settings().workers == cores
    assert load_settings(environ={"LAMPI_WORKERS": "auto"}).workers == cores
    assert load_settings({"workers": "AUTO"}, environ={"LAMPI_WORKERS": "3"}).workers == cores
    assert load_settings({"workers": "0"}, environ={}).workers == cores
    assert load_settings(config_file=toml(tmp_path, 'workers = "auto"\n'), environ={}).workers == cores
    assert load_settings({"workers": "5"}, config_file=toml(tmp_path, 'workers = "auto"\n'), environ={}).workers == 5
    assert load_settings(environ={"LAMPI_WORKERS": "1"}).workers == 1
    with pytest.raises(ValueError, match="workers"):
        load_settings({"workers": "-2"}, environ={})
    with pytest.raises(ValueError, match="workers"):
        load_settings(config_file=toml(tmp_path, 'workers = "all"\n'), environ={})


def test_bad_override():
    with pytest.raises(ValueError, match="workers"):
        load_settings({"workers": "many"}, environ={})
    with pytest.raises(ValueError, match="nonsense"):
        load_settings({"nonsense": 1}, environ={})


def test_int_from_string_toml_and_override(tmp_path):
    # a quoted number in TOML and a flag given as text are accepted
    assert load_settings(config_file=toml(tmp_path, 'port = "8081"\n'), environ={}).port == 8081
    assert load_settings({"port": "8082"}, environ={}).port == 8082


@pytest.mark.parametrize("text, parsed", [
    ("1%", (0, 0.01)), ("0.5 %", (0, 0.005)), ("0", (0, 0.0)), ("4096", (4096, 0.0)), ("4k", (4096, 0.0)),
    ("512M", (512 * 1024**2, 0.0)), ("512MiB", (512 * 1024**2, 0.0)), ("2GB", (2 * 1024**3, 0.0)),
    ("1.5T", (int(1.5 * 1024**4), 0.0)),
])
def test_min_free_space_forms(text, parsed):
    assert load_settings({"min_free_space": text}, environ={}).min_free() == parsed


def test_min_free_space_default_and_sources(tmp_path):
    assert Settings().min_free() == (0, 0.01)  # Swift's fallocate_reserve default: 1%
    assert load_settings(environ={"LAMPI_MIN_FREE_SPACE": "2G"}).min_free() == (2 * 1024**3, 0.0)
    cfg = toml(tmp_path, 'min_free_space = "5%"\n')
    assert load_settings(config_file=cfg, environ={}).min_free() == (0, 0.05)
    assert load_settings({"min_free_space": "1M"}, config_file=cfg, environ={}).min_free() == (1024**2, 0.0)


@pytest.mark.parametrize("text", ["lots", "-1", "100%", "-2%", "M", "", "1%%", "inf", "nan"])
def test_min_free_space_refuses_nonsense(text):
    with pytest.raises(ValueError, match="min_free_space"):
        load_settings({"min_free_space": text}, environ={})


def test_min_free_space_in_toml_is_text(tmp_path):
    with pytest.raises(ValueError, match="min_free_space"):  # as every text setting: quote it
        load_settings(config_file=toml(tmp_path, "min_free_space = 1024\n"), environ={})


def test_bucket_namespace_sources(tmp_path):
    assert Settings().bucket_namespace == "global"
    assert load_settings(environ={"LAMPI_BUCKET_NAMESPACE": "project"}).bucket_namespace == "project"
    cfg = toml(tmp_path, 'bucket_namespace = "project"\n')
    assert load_settings(config_file=cfg, environ={}).bucket_namespace == "project"
    for bad in ({"environ": {"LAMPI_BUCKET_NAMESPACE": "tenant"}},
                {"config_file": toml(tmp_path, 'bucket_namespace = "Global"\n'), "environ": {}}):
        with pytest.raises(ValueError, match="bucket_namespace.*global, project"):
            load_settings(**bad)


def test_storage_policy_tables(tmp_path):
    cfg = toml(tmp_path, '[[storage_policy]]\nname = "fast"\n\n[[storage_policy]]\nname = "slow"\n'
                         'path = "/mnt/slow"\ndefault = true\n')
    s = load_settings(config_file=cfg, environ={"LAMPI_DATA_DIR": str(tmp_path / "d")})
    pols = s.policies()
    assert [(p.name, p.default, p.in_data_dir) for p in pols] == [("fast", False, True), ("slow", True, False)]
    assert pols[1].root == Path("/mnt/slow")
    assert [p.name for p in Settings().policies()] == ["default-placement"]


@pytest.mark.parametrize("text,word", [
    ('[[storage_policy]]\nname = "a"\ndefault = true\n[[storage_policy]]\nname = "b"\ndefault = true\n', "default"),
    ('[[storage_policy]]\nname = "a"\ncolour = "red"\n', "colour"),
    ('[[storage_policy]]\nname = "a_b"\n', "invalid"),
    ('[[storage_policy]]\nname = "a"\npath = "x"\n[[storage_policy]]\nname = "b"\npath = "x/blobs/y"\n', "inside"),
    ('storage_policy = "a"\n', "tables"),
])
def test_storage_policy_tables_refused(tmp_path, text, word):
    with pytest.raises(ValueError, match=word):
        load_settings(config_file=toml(tmp_path, text), environ={})


def test_boolean_settings_from_env_toml_and_flags(tmp_path) -> None:
    assert load_settings({}, environ={}).sse_c_require_tls is True
    for text, want in (("false", False), ("0", False), ("No", False), ("off", False), ("true", True), ("1", True)):
        assert load_settings({}, environ={"LAMPI_SSE_C_REQUIRE_TLS": text}).sse_c_require_tls is want
    toml = tmp_path / "lampi.toml"
    toml.write_text("sse_c_require_tls = false\n")
    assert load_settings({}, config_file=str(toml), environ={}).sse_c_require_tls is False
    assert load_settings({"sse_c_require_tls": True}, config_file=str(toml), environ={}).sse_c_require_tls is True
    toml.write_text("sse_c_require_tls = 0\n")  # a TOML integer is not a boolean
    with pytest.raises(ValueError, match="sse_c_require_tls"):
        load_settings({}, config_file=str(toml), environ={})
    with pytest.raises(ValueError, match="true or false"):
        load_settings({}, environ={"LAMPI_SSE_C_REQUIRE_TLS": "maybe"})


def test_console_port_from_flag_env_and_toml(tmp_path):
    assert load_settings(environ={}).console_port == 8081  # the default: the console is on
    assert load_settings(config_file=toml(tmp_path, "console_port = 9101\n"), environ={}).console_port == 9101
    assert load_settings(environ={"LAMPI_CONSOLE_PORT": "0"}).console_port == 0
    assert load_settings({"console_port": "9102"}, environ={"LAMPI_CONSOLE_PORT": "0"}).console_port == 9102
    assert load_settings({"console_port": 0}, environ={}).console_url() == ""
    assert load_settings({"host": "0.0.0.0", "console_port": 9103}, environ={}).console_url() == "http://127.0.0.1:9103"
    with pytest.raises(ValueError, match="console_port"):
        load_settings({"console_port": 70000}, environ={})


def test_console_segment_size_from_flag_env_and_toml(tmp_path):
    assert load_settings(environ={}).console_segment_size == 1024**3
    assert load_settings(config_file=toml(tmp_path, "console_segment_size = 2097152\n"),
                         environ={}).console_segment_size == 2097152
    assert load_settings(environ={"LAMPI_CONSOLE_SEGMENT_SIZE": "1048576"}).console_segment_size == 1048576
    for bad in (1048575, 5 * 1024**3 + 1):
        with pytest.raises(ValueError, match="console_segment_size"):
            load_settings({"console_segment_size": bad}, environ={})


def test_inline_max_default_and_range(tmp_path):
    """inline_max: -1 (the default) is 64 KiB over SQLite and PostgreSQL alike; 0 turns
    inline blobs off; past 1 MiB or below -1 is refused."""
    assert Settings().inline_max == -1 and Settings().inline_limit() == 65536
    assert Settings(meta_url="postgresql://lampi@db/lampi").inline_limit() == 65536
    assert load_settings(environ={"LAMPI_INLINE_MAX": "0"}).inline_limit() == 0
    assert load_settings(config_file=toml(tmp_path, "inline_max = 4096\n"), environ={}).inline_limit() == 4096
    for bad in (-2, 1024 * 1024 + 1):
        with pytest.raises(ValueError, match="inline_max"):
            Settings(inline_max=bad)
