"""The model as the worker serves it: a verified bundle on its device, warmed up, with the threshold that decides
and the identity every output record carries. The loop swaps one `ServingModel` for another, never its parts."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from detector.config import Config
from detector.model.bundle import ModelBundle
from detector.model.scoring import BatchScorer, ScoredBatch, resolve_device
from detector.model.threshold import Threshold

log = logging.getLogger("tsad.model")


class BatchScoring(Protocol):
    def score(self, windows: np.ndarray) -> ScoredBatch: ...


@dataclass(frozen=True)
class ModelIdentity:
    """Which model scored a window: its name and version, as output records carry them."""

    name: str
    version: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


@dataclass(frozen=True)
class ServingModel:
    identity: ModelIdentity
    scorer: BatchScoring
    threshold: Threshold
    window: int  # samples per channel
    created: str = ""  # the bundle's creation time (ISO-8601)
    channels: tuple[str, ...] = ("value",)  # names, in the order of a window row's channel-major blocks
    reference: tuple[float, ...] = ()  # deciles of the held-out normal scores (drift reference), if recorded
    pinned: bool = False  # on CUDA: batches built in pinned host memory go to the device without a staging copy

    @property
    def width(self) -> int:
        return self.window * len(self.channels)


def use_cpu_threads(n: int) -> None:
    """`model.threads`, set once at start-up: torch's intra-op threads (0: the libraries decide). When torch runs a
    pool (n > 1), numpy's BLAS gets the same count: on CUDA torch then copies batches into pinned memory while BLAS
    checks rows for NaN, and two pools each as large as the node spin against each other (4x slower on a 16-core
    H200 host than 8 threads each; docs/performance.md §6)."""
    if n > 0:
        torch.set_num_threads(n)
    if n > 1:
        threadpool_limits(limits=n, user_api="blas")


def load_serving_model(config: Config, path: str | None = None) -> tuple[ServingModel, torch.device]:
    """Load and verify the bundle (the configured one unless `path` names another), place it on its device and
    warm it up (raises BundleError)."""
    bundle = ModelBundle.load(path or config.model.bundle)
    device = resolve_device(config.model.device)
    dtype = torch.bfloat16 if config.model.dtype == "bfloat16" else torch.float32
    scorer = BatchScorer(bundle.scorer(device, dtype), config.batch.max_size, config.events.segments)
    started = time.perf_counter()
    scorer.warm_up(config.model.warmup_batches)
    log.info("model %s %s on %s (%s), warmed up in %.2f s", bundle.name, bundle.version, device,
             config.model.dtype, time.perf_counter() - started)
    deciles = tuple(float(d) for d in bundle.metrics.get("score_reference", {}).get("deciles", []))
    model = ServingModel(ModelIdentity(bundle.name, bundle.version), scorer, bundle.threshold, bundle.window,
                         bundle.created, bundle.channels, deciles, pinned=device.type == "cuda")
    return model, device
