"""Topic creation for replay, tests and the demo (idempotent)."""

from __future__ import annotations

import contextlib
import time

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError


def ensure_topics(bootstrap: str, topics: dict[str, int], timeout: float = 30.0, **client_config: object) -> None:
    """Create each topic with its partition count unless it exists; wait until all have leaders."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client_config)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics(new)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            described = admin.describe_topics(list(topics))
            if all(t.get("error_code", 0) == 0 and t["partitions"] and
                   all(p.get("leader_id", p.get("leader", -1)) >= 0 for p in t["partitions"]) for t in described):
                return
            time.sleep(0.1)
        raise TimeoutError(f"topics {sorted(topics)} have no leaders after {timeout} s")
    finally:
        admin.close()
