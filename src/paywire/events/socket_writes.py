"""Live event-stream writes on a thread of their own, beside the event loop.

With 1,000 streams open, each wake-up of the stream hub is 1,000 socket writes, and each write
is a system call of ~50 µs on a loopback socket (the kernel delivers the bytes, and wakes the
reader, inside it): 50 ms of the one event loop per wake-up, which API requests then wait
behind. The system call does not need the interpreter, so the hub hands a batch of writes to a
thread, which makes them while the loop serves requests; the loop's share is framing the chunks
and a dictionary look-up per stream.

Only a stream served by `paywire serve` (its HTTP protocol puts the connection's transport in the
request's scope, `EXTENSION`) over HTTP/1.1 (chunked bodies) is written this way, and only when
nothing is waiting in the transport's own buffer, so bytes never overtake each other. Each such
stream writes to a duplicate of its socket's descriptor, closed when the stream ends, so a write
never lands on another connection that reused the number. A write the socket cannot take whole
(a slow client) is finished by the transport on the loop, which then applies the server's flow
control, and the stream goes on through the ordinary ASGI path until it has caught up.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

EXTENSION = "paywire.transport"  # scope["extensions"][EXTENSION]: the connection's asyncio transport

GONE = b""  # a write's outcome: the client has gone (an empty remainder is never returned)

_executor: ThreadPoolExecutor | None = None


def frame(chunk: bytes) -> bytes:
    """`chunk` as one HTTP/1.1 chunk of a chunked body (the framing h11 would add)."""
    return b"%x\r\n%b\r\n" % (len(chunk), chunk)


def write_all(batch: list[tuple[int, bytes]]) -> list[bytes | None]:
    """Write each (descriptor, bytes) without waiting: per write, None if it went whole, else
    what is left (all of it if the socket's buffer was full), or GONE."""
    outcomes: list[bytes | None] = []
    for fd, data in batch:
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            outcomes.append(data)
        except OSError:  # reset, broken pipe: the client is gone
            outcomes.append(GONE)
        else:
            outcomes.append(None if sent == len(data) else data[sent:])
    return outcomes


def submit(batch: list[tuple[int, bytes]]) -> asyncio.Future[list[bytes | None]]:
    """Run `write_all(batch)` on the writes thread (one per process, made on first use)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="paywire-stream-writes")
    return asyncio.get_running_loop().run_in_executor(_executor, write_all, batch)
