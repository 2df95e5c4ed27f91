"""Prometheus metrics, one registry per app (tests build many apps in one process)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class _Snapshot(Collector):
    """Values read from SQL just before each scrape (pending work, unanswered...)."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[str, float]] = {}

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, value) in self.values.items():
            yield GaugeMetricFamily(name, help_text, value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.inbound = Counter(
            "relaydesk_inbound_messages",
            "Customer messages received, by network and outcome",
            ["network", "outcome"],
            registry=self.registry,
        )
        self.webhook_to_slack = Histogram(
            "relaydesk_webhook_to_slack_seconds",
            "Time from a webhook's arrival to its message being posted in Slack",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.slack_calls = Counter(
            "relaydesk_slack_api_calls",
            "Slack Web API calls, by method and status (ok or the error code)",
            ["method", "status"],
            registry=self.registry,
        )
        self.retries = Counter(
            "relaydesk_retries",
            "Deliveries put back for a later try, by kind (slack, network)",
            ["kind"],
            registry=self.registry,
        )
        self.snapshot = _Snapshot()
        self.registry.register(self.snapshot)

    def render(self, gauges: dict[str, tuple[str, float]]) -> bytes:
        self.snapshot.values = gauges
        return generate_latest(self.registry)
