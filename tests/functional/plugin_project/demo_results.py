"""A user's tests, written only against the lampi pytest plugin's fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid

import pytest
from botocore.exceptions import ClientError
from swiftclient.exceptions import ClientException

from results import publish_s3, publish_swift

MODE = os.environ.get("PLUGIN_DEMO_MODE", "")


@pytest.fixture(autouse=True)
def note_server(request):
    """Where the outer test asks (PLUGIN_DEMO_LOG): which xdist worker ran on which server."""
    log = os.environ.get("PLUGIN_DEMO_LOG")
    if log and "lampi_server" in request.fixturenames:
        port = request.getfixturevalue("lampi_server").port
        with open(log, "a") as fh:
            fh.write(f"{os.environ.get('PYTEST_XDIST_WORKER', '-')} {port}\n")


def name(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}"


def test_swiftclient(lampi_swift):
    c = name("results")
    etag = publish_swift(lampi_swift, c, "run-1.json", {"accuracy": 0.9})
    headers, body = lampi_swift.get_object(c, "run-1.json")
    assert json.loads(body) == {"accuracy": 0.9}
    assert headers["etag"] == etag
    assert headers["content-type"] == "application/json"


def test_boto3_and_swift_see_one_store(lampi_s3, lampi_swift):
    b = name("bucket")
    publish_s3(lampi_s3, b, "run-2.json", {"loss": 0.1})
    assert json.loads(lampi_swift.get_object(b, "run-2.json")[1]) == {"loss": 0.1}
    assert [o["Key"] for o in lampi_s3.list_objects_v2(Bucket=b)["Contents"]] == ["run-2.json"]


def test_boto3_resource(lampi_s3_resource):
    bucket = lampi_s3_resource.create_bucket(Bucket=name("res"))
    bucket.put_object(Key="a/b.txt", Body=b"data")
    assert [o.key for o in bucket.objects.all()] == ["a/b.txt"]


def test_swift_cli(lampi_env, tmp_path):
    swift = shutil.which("swift")
    assert swift, "the swift CLI (python-swiftclient) is installed with lampi's test dependencies"
    src = tmp_path / "data.csv"
    src.write_text("a,b\n1,2\n")
    c = name("cli")
    env = {**os.environ, **lampi_env}
    subprocess.run([swift, "upload", c, "data.csv"], cwd=tmp_path, env=env, check=True, timeout=120,
                   capture_output=True)
    out = subprocess.run([swift, "list", c], env=env, check=True, timeout=120, capture_output=True, text=True)
    assert out.stdout.split() == ["data.csv"]


def test_other_projects_are_kept_apart(lampi_server, lampi_swift):
    c = name("private")
    lampi_swift.put_container(c)
    lampi_swift.put_object(c, "secret", b"x")
    other = lampi_server.make_user()  # a member of a new project, with an S3 key pair
    with pytest.raises(ClientException) as exc:
        lampi_server.swift(other).get_object(c, "secret")
    assert exc.value.http_status in (403, 404)
    with pytest.raises(ClientError) as err:
        lampi_server.s3(other).get_object(Bucket=c, Key="secret")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_a_store_of_its_own(lampi_server_fn):
    assert lampi_server_fn.swift().get_account()[1] == []


@pytest.mark.skipif(MODE != "fail", reason="only when the outer test asks for a failing run")
def test_fails_on_purpose(lampi_swift):
    lampi_swift.put_container(name("fail"))
    assert False, "this test fails on purpose"


@pytest.mark.skipif(MODE != "interrupt", reason="only when the outer test interrupts the run")
def test_waits_to_be_interrupted(lampi_server, lampi_server_fn):
    with open(os.environ["PLUGIN_DEMO_READY"], "w") as fh:
        fh.write(f"{lampi_server.proc.pid} {lampi_server_fn.proc.pid}")
    import time

    time.sleep(600)
