"""A TCP proxy in front of a service (the broker, the database) that a test can cut, to simulate
an outage, or hold, to delay what the server says.

RabbitMQ and PostgreSQL are shared with other test runs, so they cannot be restarted; ``cut()``
closes every connection through the proxy and refuses new ones (what clients see while a server
restarts), ``restore()`` accepts connections again. ``hold()`` stops forwarding server-to-client
bytes (a broker's receipts and confirms) while the connections stay up; ``release()`` forwards
them again, in order, nothing lost.
"""

from __future__ import annotations

import random
import socket
import threading


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port = _port_outside_the_ephemeral_range()
        self.connections = 0
        self._flowing = threading.Event()
        self._flowing.set()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def start(self) -> TcpProxy:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(self.address)
        server.listen(16)
        self._server = server
        self._thread = threading.Thread(target=self._accept, args=(server,), daemon=True)
        self._thread.start()
        return self

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets += [client, upstream]
                self.connections += 1
            for a, b, held in ((client, upstream, None), (upstream, client, self._flowing)):
                threading.Thread(target=self._pipe, args=(a, b, held), daemon=True).start()

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def _pipe(
        self, src: socket.socket, dst: socket.socket, flowing: threading.Event | None
    ) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if flowing is not None:
                    flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        # Each direction closes the socket it read from: a proxy that carries thousands of
        # short connections (a worker's database sessions) must not keep their descriptors.
        with self._lock:
            if src in self._sockets:
                self._sockets.remove(src)
        src.close()

    def cut(self) -> None:
        """Close the listener and every open connection."""
        if self._server is not None:
            try:
                self._server.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
            except OSError:
                pass
            self._server.close()
            self._server = None
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def restore(self) -> None:
        self.start()

    def stop(self) -> None:
        self.cut()


def _port_outside_the_ephemeral_range() -> int:
    """A free port below the range the kernel takes the local ports of outgoing connections
    from: while the proxy is cut its port is free, and one in that range could become the
    local port of any connection on the machine, so that ``restore()`` could not bind it."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ports:
            first = int(ports.read().split()[0])
    except (OSError, ValueError, IndexError):
        first = 32768
    for _ in range(200):
        port = random.randrange(max(1024, first - 12000), first)
        probe = socket.socket()
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            probe.close()
        return port
    raise RuntimeError("no free port below the ephemeral range")
