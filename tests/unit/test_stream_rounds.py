"""How often the stream hub writes to its streams, and the delivery latency that buys."""

from __future__ import annotations

import pytest

from paywire.events import stream_hub


@pytest.mark.parametrize(("streams", "seconds"), [(1, 0.001), (200, 0.2), (1000, 1.0), (5000, 1.0)])
def test_rounds_are_one_ms_a_stream_apart_capped_at_one_second(streams: int, seconds: float) -> None:
    # Each round costs a system call and a client wake-up per socket whatever it carries: with
    # 1,000 streams, one round a second, not two (half the sends; the API's read p99 suffered).
    assert stream_hub.coalesce_seconds(streams) == pytest.approx(seconds)


def test_an_event_reaches_every_stream_within_the_documented_bound() -> None:
    # docs/eventbus.md: up to 1.6 s after its commit with 1,000 streams, 0.32 s with 200.
    def bound(streams: int) -> float:
        return stream_hub.coalesce_seconds(streams) * (1 + stream_hub.WRITE_SPREAD)

    assert bound(1000) == pytest.approx(1.6)
    assert bound(200) == pytest.approx(0.32)
    assert bound(1) < 0.01  # a single EventBus consumer is not held back
