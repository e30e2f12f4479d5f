"""The delivery latency histogram (commit -> response) the dispatcher feeds through `ops.metrics`."""

from __future__ import annotations

from prometheus_client import REGISTRY, generate_latest

from paywire.ops import metrics


def _count(destination: str, le: str) -> float:
    value = REGISTRY.get_sample_value("paywire_delivery_latency_seconds_bucket", {"destination": destination, "le": le})
    return value or 0.0


def test_observations_land_in_their_buckets_and_a_clock_step_back_counts_as_zero() -> None:
    before = (_count("unit", "0.01"), _count("unit", "0.1"), _count("unit", "+Inf"))
    metrics.observe_delivery_latency("unit", [0.004, 0.07, 42.0, -0.5])
    after = (_count("unit", "0.01"), _count("unit", "0.1"), _count("unit", "+Inf"))
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 3, 4]
    assert b'paywire_delivery_latency_seconds_bucket{destination="unit",le="60.0"}' in generate_latest(REGISTRY)
