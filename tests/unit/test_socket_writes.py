"""The writes thread's socket calls, on real sockets: whole, in part, and to a client that left."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from paywire.events import socket_writes
from paywire.events.sinks import Sink


def test_frame_is_one_http_chunk() -> None:
    assert socket_writes.frame(b"id: 1\n\n") == b"7\r\nid: 1\n\n\r\n"
    assert socket_writes.frame(b"x" * 300) == b"12c\r\n" + b"x" * 300 + b"\r\n"


def test_writes_whole_in_part_and_to_a_gone_client() -> None:
    ours, theirs = socket.socketpair()
    gone_ours, gone_theirs = socket.socketpair()
    try:
        ours.setblocking(False)
        gone_ours.setblocking(False)
        gone_theirs.close()
        big = b"x" * (16 << 20)  # more than any socket buffer takes at once
        whole, partial, full, gone = socket_writes.write_all(
            [(ours.fileno(), b"hello"), (ours.fileno(), big), (ours.fileno(), b"more"), (gone_ours.fileno(), b"x")]
        )
        assert whole is None
        assert partial is not None and 0 < len(partial) < len(big) and big.endswith(partial)
        assert full == b"more"  # the buffer was full: nothing went
        assert gone == socket_writes.GONE
        assert theirs.recv(5) == b"hello"
    finally:
        for s in (ours, theirs, gone_ours):
            s.close()


class _Transport(asyncio.WriteTransport):
    def __init__(self, sock: socket.socket, extra: dict[str, Any]) -> None:
        super().__init__({"socket": sock, **extra})

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0


async def _send(_message: Any) -> None:
    pass


def test_a_stream_under_tls_is_never_written_to_its_socket() -> None:
    a, b = socket.socketpair()
    try:
        plain = Sink(_send, 0, False, None, lambda: False)
        plain.use_socket(_Transport(a, {}))
        assert plain.fd is not None and plain.direct()
        plain.close()
        assert plain.fd is None
        tls = Sink(_send, 0, False, None, lambda: False)
        tls.use_socket(_Transport(a, {"ssl_object": object(), "sslcontext": object()}))
        assert tls.fd is None and not tls.direct()
    finally:
        a.close()
        b.close()
