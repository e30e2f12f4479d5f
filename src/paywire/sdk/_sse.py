"""Server-sent events (`text/event-stream`) decoded from raw bytes, without I/O.

Splits the bytes itself instead of httpx's `aiter_lines`, which decodes and yields every line
(about four per event) through several generators.
"""

from __future__ import annotations


class SSEDecoder:
    """Feed it the stream's bytes as they arrive; it returns each complete (event type, data)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[tuple[str, bytes]]:
        if b"\r" in chunk:  # (the spec allows CRLF and CR line ends; Paywire sends LF)
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        self._buffer += chunk
        if b"\n\n" not in self._buffer:
            return []
        *messages, self._buffer = self._buffer.split(b"\n\n")
        decoded = []
        for message in messages:
            kind, data = "message", list[bytes]()
            for line in message.split(b"\n"):
                if not line or line.startswith(b":"):  # a comment: the server's heartbeat
                    continue
                field, _, value = line.partition(b":")
                if value.startswith(b" "):
                    value = value[1:]
                if field == b"event":
                    kind = value.decode()
                elif field == b"data":
                    data.append(value)
            if data:
                decoded.append((kind, b"\n".join(data)))
        return decoded
