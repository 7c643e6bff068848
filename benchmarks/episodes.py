"""Alert episodes against per-window events, on labelled streams, through the worker's own episode logic.

    python benchmarks/episodes.py [--streams 8] [--skab N] [--no-doc]

Streams: continuous telemetry with labelled incidents of every kind the generator knows (spike burst, dropout,
noise burst, temporary level shift, drift, shape distortion), half of them also with a persistent level shift (a new
normal level: only the change is an incident), and SKAB experiments (first 400 rows train, the rest streams). Each
stream trains a bundle on its quiet start (time split, threshold at a 1% false-positive quantile), scores every
window of the rest (stride 4; SKAB stride 1), and turns the verdicts into records two ways: one event per anomalous
window (today), and alert episodes (`EpisodeTracker`, as the worker runs it). For each way it prints:

- alerting records per detected incident (events; episodes: opens + updates — a close resolves, it does not page);
- incidents detected (recall);
- false alarms per 1,000 windows (events outside every incident; episodes opened outside every incident);
- detection delay (first alert after the incident starts, in samples).

A window belongs to an incident when its last sample lies inside it or within one window length after it.
Writes docs/episodes.md's measured block unless --no-doc.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from detector.pipeline.episodes import EpisodePolicy, EpisodeTracker, WindowVerdict
from sample_streams.incidents import incident_series
from trainer.pipeline import train
from trainer.presets import get_preset
from trainer.telemetry import Series, cut_windows, read_series, series_windows, window_ends

DOC = Path(__file__).resolve().parent.parent / "docs" / "episodes.md"


@dataclass
class Tally:
    """Counts over many streams for one way of alerting."""

    alerts_in_incidents: int = 0
    detected: int = 0
    incidents: int = 0
    false_alarms: int = 0
    windows: int = 0
    delays: list[int] = field(default_factory=list)
    after_shift_flagged: int = 0  # windows flagged once a persistent level shift has settled (the new normal)
    after_shift_windows: int = 0
    open_at_end: int = 0  # streams whose episode never closed after such a shift

    def row(self, name: str) -> list[str]:
        per = self.alerts_in_incidents / self.detected if self.detected else float("nan")
        delay = f"{statistics.median(self.delays):.0f}" if self.delays else "-"
        return [name, f"{per:.2f}", f"{self.detected}/{self.incidents} ({self.detected / self.incidents:.0%})",
                f"{1000 * self.false_alarms / self.windows:.2f}", delay]


def _incidents(labels: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], labels.astype(np.int8), [0]])))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def _owner(t: int, incidents: list[tuple[int, int]], window: int) -> int | None:
    for k, (s, e) in enumerate(incidents):
        if s <= t < e + window:
            return k
    return None


def tally_stream(ends: np.ndarray, scores: np.ndarray, threshold: float, labels: np.ndarray, window: int,
                 policy: EpisodePolicy, events: Tally, episodes: Tally, settled_from: int | None = None) -> None:
    """Add one stream's per-window events and episodes to the tallies (`ends`: each window's last sample)."""
    incidents = [(s, e) for s, e in _incidents(labels) if e > ends[0]]
    first_event: dict[int, int] = {}
    first_open: dict[int, int] = {}
    tracker = EpisodeTracker(policy)
    for t, score in zip(ends.tolist(), scores.tolist(), strict=True):
        owner = _owner(t, incidents, window)
        if score > threshold:
            if owner is None:
                events.false_alarms += 1
            else:
                events.alerts_in_incidents += 1
                first_event.setdefault(owner, t)
        was_open = tracker.states.get("s") is not None and tracker.states["s"].episode is not None
        for record in tracker.apply(WindowVerdict("s", 0, t, float(t), score, score / threshold), float(t)):
            if record.kind == "episode_close":
                continue
            if owner is None and record.kind == "episode_open":
                episodes.false_alarms += 1
            elif owner is not None:
                episodes.alerts_in_incidents += 1
                first_open.setdefault(owner, t)
        if was_open and owner is not None:  # an episode already open when the incident began still alerts for it
            first_open.setdefault(owner, t)
    if settled_from is not None:  # the new level after a persistent shift, once no window straddles the change
        after = ends >= settled_from
        events.after_shift_flagged += int((scores[after] > threshold).sum())
        events.after_shift_windows += int(after.sum())
        episodes.open_at_end += int(tracker.states["s"].episode is not None)
    for tally, first in ((events, first_event), (episodes, first_open)):
        tally.incidents += len(incidents)
        tally.windows += len(ends)
        tally.detected += len(first)
        tally.delays += [t - incidents[k][0] for k, t in first.items()]


DENSE = {"kind": "dense", "hidden": [32, 16, 8], "activation": "relu", "output_activation": "sigmoid"}
RECIPES: dict[str, tuple[str, dict[str, Any]]] = {  # name -> (preset, overrides)
    "dense": ("default", {"architecture": DENSE, "threshold": "fpr_quantile", "threshold_params": {"fpr": 0.01},
                          "epochs": 60, "patience": 15}),
    "dense-window-center": ("default", {"architecture": {**DENSE, "output_activation": "none"},
                                        "scaler": "window_center", "threshold": "fpr_quantile",
                                        "threshold_params": {"fpr": 0.01}, "epochs": 60, "patience": 15}),
    "telemetry": ("telemetry", {}),
    "telemetry-mae": ("telemetry", {"score": "mean_abs_error"}),
}


def score_stream(series: Series, train_rows: int, window: int, stride: int, recipe: str, seed: int
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """(window ends, scores, threshold) for the windows ending after the training rows."""
    from dataclasses import replace

    dataset = series_windows(series, window, stride, rows=slice(0, train_rows), source="stream")
    dataset = replace(dataset, is_normal=None, point_labels=None)
    preset, overrides = RECIPES[recipe]
    config = get_preset(preset).replace(test_size=0.0, **overrides)
    bundle = train(dataset, config, seed=seed, on_epoch=None).bundle
    ends = window_ends(len(series.values), window, stride)
    keep = ends >= train_rows
    rows = cut_windows(series.values, window, stride)[keep].astype(np.float32)
    return ends[keep], bundle.scorer().score(rows).scores, bundle.threshold.value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=8, help="generated incident streams")
    parser.add_argument("--skab", type=int, default=8, help="SKAB experiments as streams (0: none)")
    parser.add_argument("--data", default=os.environ.get("TSAD_SKAB", str(Path(__file__).resolve().parents[2]
                                                                         / "shared/datasets/skab")))
    parser.add_argument("--recipes", default="dense,dense-window-center,telemetry",
                        help=f"comma separated, of {', '.join(RECIPES)}")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    policies = {"episodes 1 of 1, quiet 50": EpisodePolicy(quiet_windows=50),
                "episodes 2 of 3, quiet 50": EpisodePolicy(open_k=2, open_n=3, quiet_windows=50)}
    started = time.perf_counter()
    lines: list[str] = []
    for recipe in args.recipes.split(","):
        tallies = {"per-window events (today)": Tally(), **{name: Tally() for name in policies}}
        generated = [(incident_series(14_000, seed=s, persistent_shift=9_000 if s % 2 else None), 2_000, 64, 4)
                     for s in range(args.streams)]
        streams: list[tuple[Series, int, int, int, int | None]] = [
            (Series(np.arange(len(g.values), dtype=np.float64), g.values[:, None], g.labels, ("value",)),
             train_rows, window, stride, 9_000 + 2 * window if s % 2 else None)
            for s, (g, train_rows, window, stride) in enumerate(generated)]
        if args.skab:
            from skab import TRAIN_ROWS, experiment_files

            streams += [(read_series(p), TRAIN_ROWS, 30, 1, None)
                        for p in experiment_files(Path(args.data))[: args.skab]]
        for i, (series, train_rows, window, stride, settled) in enumerate(streams):
            ends, scores, threshold = score_stream(series, train_rows, window, stride, recipe, seed=i)
            assert series.labels is not None
            for name, policy in policies.items():
                tally_stream(ends, scores, threshold, series.labels, window, policy,
                             tallies["per-window events (today)"] if name == next(iter(policies)) else Tally(),
                             tallies[name], settled)
        lines += [f"Recipe `{recipe}` — {args.streams} generated streams (6 incident kinds, half with a persistent "
                  f"level shift) and {args.skab} SKAB experiments:", "",
                  "| alerting | records per detected incident | incidents detected | false alarms per 1,000 windows "
                  "| median delay (samples) |", "| --- | --- | --- | --- | --- |"]
        lines += ["| " + " | ".join(t.row(name)) + " |" for name, t in tallies.items()] + [""]
        today, default = tallies["per-window events (today)"], tallies[next(iter(policies))]
        shifted = args.streams // 2
        share = today.after_shift_flagged / max(1, today.after_shift_windows)
        lines += [f"After a persistent level shift has settled: {today.after_shift_flagged:,} of "
                  f"{today.after_shift_windows:,} windows flagged ({share:.0%}); the episode opened at the shift is "
                  f"still open at the end in {default.open_at_end} of {shifted} streams.", ""]
        print("\n".join(lines[-len(tallies) - 6:]), flush=True)
    lines.append(f"({time.perf_counter() - started:.0f} s on this machine)")
    if not args.no_doc:
        from perfdoc import write_section

        body = (f"`python benchmarks/episodes.py --streams {args.streams} --skab {args.skab}` — written by the script "
                f"on {time.strftime('%Y-%m-%d')}.\n\n" + "\n".join(lines))
        write_section(DOC, "episodes", body)


if __name__ == "__main__":
    main()
