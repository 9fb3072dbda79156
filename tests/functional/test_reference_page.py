"""The user's starting page (../shared/reference/using-allas-with-python.md), run as
written: connection from the RC file's environment variables, the inline connection,
and the six operations, against a real ``lampi serve``."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.functional.conftest import LampiServer

CONNECT_FROM_ENV = '''
from keystoneauth1 import session
from keystoneauth1.identity import v3
import swiftclient
import os

_authurl = os.environ['OS_AUTH_URL']
_auth_version = os.environ['OS_IDENTITY_API_VERSION']
_user = os.environ['OS_USERNAME']
_key = os.environ['OS_PASSWORD']
_os_options = {
    'user_domain_name': os.environ['OS_USER_DOMAIN_NAME'],
    'project_domain_name': os.environ['OS_USER_DOMAIN_NAME'],
    'project_name': os.environ['OS_PROJECT_NAME']
}

conn = swiftclient.Connection(
    authurl=_authurl,
    user=_user,
    key=_key,
    os_options=_os_options,
    auth_version=_auth_version
)
'''

OPERATIONS = '''
bucket_name='snakebucket'
conn.put_container(bucket_name)

object_name='my_snake.txt'
with open(object_name, 'r') as f:
    conn.put_object(bucket_name, object_name,
                    contents=f.read(),
                    content_type='text/plain')

resp_headers, containers = conn.get_account()

for container in containers:
   print(container)

for info in conn.get_container('snakebucket')[1]:
    print('{0}\\t{1}\\t{2}'.format(info['name'], info['bytes'], info['last_modified']))

my_obj = conn.get_object(bucket_name, object_name)[1]
with open('new_name_for_file.txt', 'bw') as f:
    f.write(my_obj)

conn.delete_object(bucket_name, 'my_snake.txt')
conn.delete_container(bucket_name)
'''


def _run(script: str, cwd: Path, env: dict[str, str]) -> str:
    res = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_reference_page_from_environment(server: LampiServer, openrc_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "my_snake.txt").write_text("hiss " * 1000)
    out = _run(CONNECT_FROM_ENV + OPERATIONS, tmp_path, openrc_env)
    assert "'name': 'snakebucket'" in out
    assert "my_snake.txt\t5000\t" in out
    assert (tmp_path / "new_name_for_file.txt").read_text() == "hiss " * 1000


def test_reference_page_inline_connection(server: LampiServer, tmp_path: Path) -> None:
    rc = server.openrc()
    inline = textwrap.dedent(f'''
        import swiftclient

        _authurl = {rc["OS_AUTH_URL"]!r}
        _auth_version = '3'
        _user = {rc["OS_USERNAME"]!r}
        _key = {rc["OS_PASSWORD"]!r}
        _os_options = {{
            'user_domain_name': 'Default',
            'project_domain_name': 'Default',
            'project_name': {rc["OS_PROJECT_NAME"]!r}
        }}

        conn = swiftclient.Connection(
            authurl=_authurl,
            user=_user,
            key=_key,
            os_options=_os_options,
            auth_version=_auth_version
        )
    ''')
    (tmp_path / "my_snake.txt").write_text("python\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    out = _run(inline + OPERATIONS, tmp_path, env)
    assert "my_snake.txt\t7\t" in out
    assert (tmp_path / "new_name_for_file.txt").read_bytes() == b"python\n"
