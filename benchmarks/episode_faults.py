"""Fault injection for alert episodes: kill -9 the worker while incidents are open, restart it, and reconcile the
episode records against the incidents that were streamed.

Each source streams quiet windows with one incident in the middle (a run of clearly anomalous windows). After the
stream: every incident must have exactly one episode (no second episode opened for it by a restarted worker) and
that episode must have its close. At-least-once may publish a record twice, but every repeat carries the same `id`;
exactly-once, read `read_committed`, has exactly one open and one close per episode.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np
from fault_scenarios import FaultEnv
from harness import TrackedProducer, WorkerProcess, read_until, wait_for

from sample_streams.generator import WindowRecord, generate

INCIDENT = slice(60, 90)  # window indexes, per source, of the incident
PER_SOURCE = 280  # a long quiet tail: every episode has room to close before the stream ends
QUIET = 10  # episodes.quiet_windows for these runs


@dataclass
class EpisodeReconciliation:
    mode: str
    incidents: int
    episodes_for_incidents: int  # incidents covered by an episode
    second_episodes: int  # incidents covered by more than one episode
    missing_closes: int  # episodes of incidents that never closed
    repeated_records: int  # records seen more than once (same id)
    spurious_episodes: int  # episodes opened outside every incident (the model's own false alarms)
    notes: list[str] = field(default_factory=list)

    def row(self) -> str:
        return (f"| kill -9 mid-incident | {self.mode} | {self.incidents} | {self.episodes_for_incidents} | "
                f"{self.second_episodes} | {self.missing_closes} | {self.repeated_records} | "
                f"{self.spurious_episodes} | {'; '.join(self.notes)} |")


HEADER = ("| scenario | mode | incidents | incidents with an episode | second episodes | missing closes | "
          "repeated records (same id) | spurious episodes | notes |\n" + "| --- " * 9 + "|")


def incident_stream(sources: int, seed: int) -> list[WindowRecord]:
    """`sources` interleaved sources, each quiet but for one incident of strongly shifted windows."""
    out: list[WindowRecord] = []
    streams = [list(generate(PER_SOURCE, kind="ecg", anomaly_rate=0.0, seed=seed + s, prefix=f"s{s}"))
               for s in range(sources)]
    for i in range(PER_SOURCE):
        for s, records in enumerate(streams):
            r, hot = records[i], INCIDENT.start <= i < INCIDENT.stop
            values = np.asarray(r.values) + (2.5 if hot else 0.0)
            out.append(WindowRecord(r.id, f"pump-{s}", float(i), values.tolist(), int(hot)))
    return out


def kill_mid_incident(env: FaultEnv, exactly_once: bool, kills: int = 2, sources: int = 4,
                      rate: float = 80.0) -> EpisodeReconciliation:
    rng = random.Random(env.seed)
    topics = env.topics()
    group = f"g-ep-{uuid.uuid4().hex[:6]}"
    # the sample model flags ~5% of quiet ECG windows: 2 of 3 to open, and no hysteresis, so that false alarms
    # neither open episodes often nor keep one open past the end of the stream
    sections: dict[str, dict] = {"events": {"mode": "episodes"},
                                 "episodes": {"open_k": 2, "open_n": 3, "quiet_windows": QUIET, "close_ratio": 1.0}}
    producer = TrackedProducer(env.kafka.bootstrap)
    records = incident_stream(sources, env.seed)
    feeder = producer.send_in_background(str(topics["input"]), records, rate)
    killed = 0
    for i in range(kills):
        w = env.worker(topics, group, f"ep{i}", exactly_once, **sections).start()
        def opened(w: WorkerProcess = w) -> bool:
            return w.metric("tsad_episodes_active") > 0 or not feeder.is_alive()

        wait_for(opened, 180, "an episode to open")
        if not feeder.is_alive():
            break
        time.sleep(rng.uniform(0.2, 1.5))
        w.kill()  # episodes are open: their closes must still come, from the next worker
        killed += 1
    final = env.worker(topics, group, "ep-final", exactly_once, **sections).start()
    feeder.join(timeout=300)
    producer.close()
    def settled(out: list) -> bool:  # every incident has an episode and every such episode its close (the
        # model's own false alarms close too: counting closes alone could stop reading before an incident's close)
        r = reconcile_episodes(out, sources, "", [])
        return r.episodes_for_incidents == sources and r.missing_closes == 0

    options = {"isolation_level": "read_committed"} if exactly_once else {}
    out = read_until(env.kafka.bootstrap, str(topics["events"]), settled, 180, **options)
    final.terminate()
    return reconcile_episodes(out, sources, "exactly-once" if exactly_once else "at-least-once",
                              [f"killed {killed}x while episodes were open"])


def reconcile_episodes(messages: list, sources: int, mode: str, notes: list[str]) -> EpisodeReconciliation:
    """An incident is covered by every episode whose span overlaps it (one opened just before it by a false alarm
    covers it too: that is one episode for the incident, not a miss)."""
    bodies = [json.loads(m.value) for m in messages]
    repeated = sum(n - 1 for n in Counter(b["id"] for b in bodies).values() if n > 1)
    unique = list({b["id"]: b for b in bodies}.values())
    spans: dict[str, dict] = {}  # episode id -> source, start, end (None while open)
    for b in unique:
        span = spans.setdefault(b["episode_id"], {"source": b["source"], "start": _window_index(b["start_time"]),
                                                  "end": None})
        if b["type"] == "episode_close":
            span["end"] = _window_index(b["end_time"])
    covering: dict[str, list[str]] = defaultdict(list)  # source -> episodes overlapping its incident
    spurious = 0
    for episode_id, span in spans.items():
        end = PER_SOURCE if span["end"] is None else span["end"]
        if span["start"] < INCIDENT.stop and end >= INCIDENT.start:
            covering[span["source"]].append(episode_id)
        else:
            spurious += 1
    ids = [e for es in covering.values() for e in es]
    missing_closes = sum(1 for e in ids if spans[e]["end"] is None)
    return EpisodeReconciliation(mode, sources, len(covering), sum(1 for es in covering.values() if len(es) > 1),
                                 missing_closes, repeated, spurious, notes)


def _window_index(iso: str) -> int:
    """The stream's event times are the window index, in seconds since the epoch."""
    return int(np.datetime64(iso.rstrip("Z"), "s").astype(np.int64))
