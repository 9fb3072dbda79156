"""The thread that sends a blob file on a connection's socket (``lampi.http.sendfile``,
the path of every file-store GET on uvloop): exact ranges over a socket whose buffer
fills, a file shorter than its record, a client that stops reading, one that leaves."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lampi.http.sendfile import SEND_CHUNK, _send_loop

pytestmark = pytest.mark.timeout(120)  # a sender stuck on a full socket fails, not hangs

SIZE = 3 * (1 << 20) + 12_345


@pytest.fixture
def blob(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "blob"
    path.write_bytes(data)
    return path, data


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A TCP loopback connection: (the server's side, non-blocking as on the loop; the
    client's side), both with small buffers so that the sender meets a full socket."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        client.connect(listener.getsockname())
        server, _ = listener.accept()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
    server.setblocking(False)
    try:
        yield server, client
    finally:
        server.close()
        client.close()


def reader(sock: socket.socket, out: bytearray, pause: float = 0.0) -> threading.Thread:
    def run() -> None:
        sock.settimeout(60)
        while chunk := sock.recv(256 * 1024):
            out.extend(chunk)
            if pause:
                time.sleep(pause)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def send(server: socket.socket, path: Path, offset: int, length: int, stop: threading.Event | None = None) -> None:
    fd = os.open(path, os.O_RDONLY)
    _send_loop(os.dup(server.fileno()), fd, offset, length, stop or threading.Event())


@pytest.mark.parametrize(("offset", "length"), [(0, SIZE), (1, SIZE - 1), (1000, SEND_CHUNK // 4 + 7), (SIZE - 1, 1)])
def test_sends_exactly_the_range_through_a_full_socket(blob: tuple[Path, bytes], pair: tuple[socket.socket, socket.socket],
                                                       offset: int, length: int) -> None:
    path, data = blob
    server, client = pair
    got = bytearray()
    t = reader(client, got, pause=0.001)  # a slow reader: the sender waits on poll
    send(server, path, offset, length)
    server.shutdown(socket.SHUT_WR)
    t.join(60)
    assert bytes(got) == data[offset:offset + length]


def test_a_file_shorter_than_its_record_is_a_reset_not_a_hang(blob: tuple[Path, bytes],
                                                               pair: tuple[socket.socket, socket.socket]) -> None:
    path, data = blob
    server, client = pair
    got = bytearray()
    t = reader(client, got)
    with pytest.raises(ConnectionResetError) as err:
        send(server, path, 0, SIZE + 100)
    assert err.value.errno == errno.EIO
    server.shutdown(socket.SHUT_WR)
    t.join(60)
    assert bytes(got) == data  # what there was, then the error


def test_stop_ends_a_send_to_a_client_that_stopped_reading(blob: tuple[Path, bytes],
                                                            pair: tuple[socket.socket, socket.socket]) -> None:
    path, _ = blob
    server, _client = pair  # the client never reads: the socket fills and stays full
    stop = threading.Event()
    fd = os.open(path, os.O_RDONLY)
    sock_fd = os.dup(server.fileno())
    t = threading.Thread(target=_send_loop, args=(sock_fd, fd, 0, SIZE, stop), daemon=True)
    t.start()
    time.sleep(0.3)
    assert t.is_alive()  # waiting for the socket
    stop.set()
    t.join(10)  # 1 s poll slices
    assert not t.is_alive()
    for owned in (sock_fd, fd):  # the thread closed its duplicates
        with pytest.raises(OSError):
            os.fstat(owned)


def test_a_client_that_leaves_ends_the_send_with_a_connection_error(blob: tuple[Path, bytes],
                                                                     pair: tuple[socket.socket, socket.socket]) -> None:
    path, _ = blob
    server, client = pair
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
    client.close()
    time.sleep(0.1)
    with pytest.raises(ConnectionError):
        send(server, path, 0, SIZE)
