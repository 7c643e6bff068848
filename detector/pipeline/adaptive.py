"""An optional adaptive threshold per source: it follows a streaming quantile of the source's recent normal scores.

Per source it keeps one number (the tracked quantile `q`, in the log domain) and a count, inside the source's
episode state (so it survives restarts and rebalances with it): O(1) memory, whatever the fleet's size.

    log q += rate · (quantile − [score ≤ q])        (stochastic quantile tracking, the classic SGD form)

settles where a share `1 − quantile` of normal scores lies above q; the threshold is `margin · q`. q starts at the
calibrated threshold / margin; until a source has `warmup` normal windows, the calibrated threshold applies.

The guard (docs/episodes.md): an adaptive threshold can learn a slow failure as normal — a bearing that degrades
over weeks raises its scores gradually, and the threshold follows. So it learns only from windows below the current
threshold and outside any episode, it moves at most by `rate` per window in log terms, and it is clamped to
[`lower`, `upper`] × the calibrated threshold: it can tune out a source's steady noise level, never rise without
bound. A degradation that outpaces `rate`, or passes `upper` × the calibrated threshold, still alarms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from detector.pipeline.episodes import EpisodeTracker, SourceState


@dataclass(frozen=True)
class AdaptivePolicy:
    quantile: float = 0.99
    margin: float = 1.5
    rate: float = 0.01
    warmup: int = 200
    lower: float = 0.5
    upper: float = 2.0
    save_every: int = 100  # learnt windows between two saves of a quiet source's state


class AdaptiveThresholds:
    def __init__(self, policy: AdaptivePolicy, tracker: EpisodeTracker) -> None:
        self.policy, self.tracker = policy, tracker

    def thresholds(self, sources: list[str], base: np.ndarray) -> np.ndarray:
        """The threshold for each window: the source's learnt one once warm, within its bounds; else `base`."""
        p, states = self.policy, self.tracker.states
        out = base.copy()
        for i, source in enumerate(sources):
            state = states.get(source)
            if state is not None and state.adaptive_n >= p.warmup:
                out[i] = min(max(p.margin * math.exp(state.adaptive_q), p.lower * base[i]), p.upper * base[i])
        return out

    def learn(self, sources: list[str], scores: np.ndarray, thresholds: np.ndarray, partitions: list[int]) -> None:
        """Update each source's quantile from its windows that were below the threshold and outside an episode."""
        p, states = self.policy, self.tracker.states
        for source, score, threshold, partition in zip(sources, scores.tolist(), thresholds.tolist(), partitions,
                                                       strict=True):
            if score > threshold:
                continue
            state = states.get(source)
            if state is None:
                state = SourceState(partition=partition)
                self.tracker.put(source, state)
            if state.episode is not None:
                continue
            log_score = math.log(max(score, 1e-12))
            if state.adaptive_n == 0:  # start from the calibrated threshold, not from one sample
                state.adaptive_q = math.log(max(threshold, 1e-12) / p.margin)
            state.adaptive_q += p.rate * (p.quantile - (log_score <= state.adaptive_q))
            state.adaptive_n += 1
            if state.adaptive_n % p.save_every == 0 or state.adaptive_n == p.warmup:
                self.tracker.dirty.add(source)
