"""Hot reload: watch the bundle location and prepare a new model off the loop's thread.

The location is a bundle directory or a link to one (`models/current -> v7`, the way a Kubernetes volume or a
ConfigMap is updated). Every `interval_s` the watcher compares a fingerprint of what it points at (the resolved
path, and the size and modification time of the manifest and the weights); on a change it loads the bundle, verifies
it (checksums, and the same window length and channels as the model being served: the batcher and the decoder are
shaped by them), places it on the device and warms it up — all on its own thread. The loop then takes the prepared
model between two batches (`take`). A bundle that fails is refused: the old model keeps serving, and the refusal
(file and problem) is handed to the loop to log, count and publish. A half-written bundle is refused and loaded
again once its files change again.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from detector.model.bundle import MANIFEST, WEIGHTS, BundleError
from detector.model.serving import ServingModel

log = logging.getLogger("tsad.model")

Fingerprint = tuple[str, tuple[tuple[int, int], ...]]


@dataclass(frozen=True)
class Refusal:
    """A bundle that could not be served, and why (the message names the file and the problem)."""

    path: str
    problem: str


def fingerprint(location: str | os.PathLike[str]) -> Fingerprint:
    """What the location points at now: the resolved directory and its files' sizes and change times."""
    root = Path(location).resolve()
    stats = []
    for name in (MANIFEST, WEIGHTS):
        try:
            st = (root / name).stat()
            stats.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stats.append((-1, -1))
    return str(root), tuple(stats)


class BundleWatcher:
    """Polls `location`; `load(path)` builds a warmed ServingModel (raising BundleError when it cannot)."""

    def __init__(self, location: str | os.PathLike[str], load: Callable[[str], ServingModel],
                 current: ServingModel, interval_s: float = 2.0) -> None:
        self.location = str(location)
        self.load, self.current, self.interval_s = load, current, interval_s
        self._seen = fingerprint(location)
        self._ready: ServingModel | Refusal | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tsad-bundle-watch", daemon=True)

    def start(self) -> BundleWatcher:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def take(self) -> ServingModel | Refusal | None:
        """The model prepared since the last call (or a refusal), at most one; None when nothing changed."""
        with self._lock:
            ready, self._ready = self._ready, None
        if isinstance(ready, ServingModel):
            self.current = ready
        return ready

    def check(self) -> None:
        """One poll (the watcher's thread calls it every interval; tests call it directly)."""
        seen = fingerprint(self.location)
        if seen == self._seen:
            return
        self._seen = seen
        path = seen[0]
        started = time.perf_counter()
        try:
            model = self.load(self.location)
            self._compatible(model, path)
        except BundleError as exc:
            log.warning("model reload refused, %s keeps serving: %s", self.current.identity.version, exc)
            self._offer(Refusal(path, str(exc)))
            return
        log.info("model %s %s loaded from %s and warmed up in %.2f s; swapping it in", model.identity.name,
                 model.identity.version, path, time.perf_counter() - started)
        self._offer(model)

    def _compatible(self, model: ServingModel, path: str) -> None:
        now = self.current
        if (model.window, model.channels) != (now.window, now.channels):
            raise BundleError(f"{Path(path) / MANIFEST}: windows of {len(model.channels)} channel(s) "
                              f"{list(model.channels)} x {model.window}, but the worker serves "
                              f"{len(now.channels)} channel(s) {list(now.channels)} x {now.window}: a different "
                              "window shape needs a restart")

    def _offer(self, ready: ServingModel | Refusal) -> None:
        with self._lock:
            self._ready = ready

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.check()
            except Exception as exc:  # the watcher must outlive any surprise; the old model keeps serving
                log.exception("bundle watcher: %s", exc)
