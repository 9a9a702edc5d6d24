"""What the reply engine counts, for `GET /metrics` (Prometheus text format).

`./run` serves with several worker processes; it gives them one PROMETHEUS_MULTIPROC_DIR,
where each process writes its own figures, and a scrape (answered by whichever process
gets it) sums them all. A single process without that variable keeps them in memory.
Gauges count live processes only: the launcher clears a dead worker's.
"""

import os

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client import generate_latest as _generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

REPLIES_STARTED = Counter("chatsite_replies_started", "Replies started")
REPLIES_FINISHED = Counter("chatsite_replies_finished", "Replies finished, by status", ["status"])
REPLIES_IN_FLIGHT = Gauge("chatsite_replies_in_flight", "Replies being written", multiprocess_mode="livesum")
TOKENS_RELAYED = Counter(
    "chatsite_tokens_relayed", "Completion tokens of finished replies (the provider's count, or an estimate)"
)
FIRST_TOKEN = Histogram(
    "chatsite_upstream_first_token_seconds",
    "From a reply's start to the provider's first text",
    buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32),
)
UPSTREAM_ERRORS = Counter("chatsite_upstream_errors", "Failed or broken provider streams, by kind", ["kind"])
WATCHERS = Gauge("chatsite_watchers", "Streams and sockets following a reply", multiprocess_mode="livesum")
REFUSALS = Counter("chatsite_refusals", "New messages refused, by reason", ["code"])
REDIS_ERRORS = Counter("chatsite_redis_errors", "Redis calls that failed, by where", ["where"])
DATABASE_ERRORS = Counter("chatsite_database_errors", "Database calls that failed, by where", ["where"])

CONTENT_TYPE = CONTENT_TYPE_LATEST


def metrics_text() -> bytes:
    """Every figure, summed over the serving processes when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return _generate_latest(registry)
    return _generate_latest(REGISTRY)
