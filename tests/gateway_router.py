"""A method-routing load balancer for tests: writes to one gateway, reads to another.

Listens on a loopback port; for each client connection it reads the first request's
line and headers, picks the writer gateway for PUT/POST/COPY/... and the reader
gateway for GET/HEAD/DELETE (reads, listings and deletes), and relays the connection's
bytes both ways unchanged except for one header: ``Connection: close`` is put in place
of the client's, so the gateway closes the connection after its response and the
client opens a new connection (routed anew) for its next request. Nothing else is
parsed or rewritten: bodies (chunked or not), ``Expect: 100-continue`` and the
gateways' own error answers pass through as they are.

Runs in threads of the test process; ``stop()`` closes the listener and every relay.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading

READ_METHODS = frozenset({b"GET", b"HEAD", b"DELETE"})
HEAD_LIMIT = 256 * 1024


class GatewayRouter:
    def __init__(self, writer: tuple[str, int], reader: tuple[str, int]) -> None:
        self.writer, self.reader = writer, reader
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.routed = {"writer": 0, "reader": 0}
        self._stop = threading.Event()
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="gateway-router", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _track(self, *socks: socket.socket, add: bool = True) -> None:
        with self._lock:
            for s in socks:
                (self._conns.add if add else self._conns.discard)(s)

    def _serve(self, client: socket.socket) -> None:
        upstream = None
        self._track(client)
        try:
            head = b""
            while b"\r\n\r\n" not in head and len(head) < HEAD_LIMIT:
                chunk = client.recv(65536)
                if not chunk:
                    return
                head += chunk
            end = head.find(b"\r\n\r\n")
            method = head.split(b" ", 1)[0]
            target = self.reader if method in READ_METHODS else self.writer
            with self._lock:
                self.routed["reader" if target is self.reader else "writer"] += 1
            if end >= 0:
                lines = head[:end].split(b"\r\n")
                kept = [lines[0]] + [ln for ln in lines[1:] if not ln.lower().startswith(b"connection:")]
                head = b"\r\n".join([*kept, b"Connection: close"]) + head[end:]
            upstream = socket.create_connection(target, timeout=600)
            self._track(upstream)
            upstream.sendall(head)
            self._relay(client, upstream)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                if s is not None:
                    self._track(s, add=False)
                    with contextlib.suppress(OSError):
                        s.close()

    def _relay(self, client: socket.socket, upstream: socket.socket) -> None:
        """Copy bytes both ways until the gateway closes (it answers one request)."""
        peers = {client: upstream, upstream: client}
        client_open = True
        while not self._stop.is_set():
            watch = [upstream, client] if client_open else [upstream]
            ready, _, _ = select.select(watch, [], [], 1.0)
            for s in ready:
                data = s.recv(262144)
                if not data:
                    if s is upstream:
                        return  # the response is complete
                    client_open = False  # the client closed (its side): pass that on, as TCP would
                    with contextlib.suppress(OSError):
                        upstream.shutdown(socket.SHUT_WR)
                    continue
                peers[s].sendall(data)

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.sock.close()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
