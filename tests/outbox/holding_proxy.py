"""A TCP proxy that can also hold back what the server sends, while the connection stays up."""

from __future__ import annotations

import socket
import threading

from tests.proxy import TcpProxy


class HoldingProxy(TcpProxy):
    """``hold()`` stops forwarding server-to-client bytes (a broker's receipts), ``release()``
    forwards them again, in order; nothing is lost and the connection never breaks."""

    def __init__(self, target: tuple[str, int]) -> None:
        super().__init__(target)
        self._flowing = threading.Event()
        self._flowing.set()

    def hold(self) -> None:
        self._flowing.clear()

    def release(self) -> None:
        self._flowing.set()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        peer = src.getpeername() if src.fileno() != -1 else None
        if peer is None or tuple(peer[:2]) != self.target:
            return super()._pipe(src, dst)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self._flowing.wait()
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
