"""A shadow model: a candidate scored on the same batches as the live one, to see how it would behave on live
traffic before it decides anything. Its verdicts go to the shadow topic (one record per window it finds anomalous)
and to metrics (anomalies per model role, agreement with the live model, its score distribution) — never to the
events topic. Promoting it is a file swap of the live bundle location, which hot reload picks up.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import orjson

from detector.kafka.seams import OutputRecord
from detector.model.serving import ServingModel
from detector.ops.metrics import WorkerMetrics
from detector.pipeline.batching import Batch
from detector.wire.records import key_source

VERDICTS = ("both", "live_only", "shadow_only", "neither")


class ShadowStage:
    def __init__(self, model: ServingModel, topic: str, metrics: WorkerMetrics) -> None:
        self.model, self.topic, self.metrics = model, topic, metrics
        self._agreement = {v: metrics.shadow_agreement.labels(verdicts=v) for v in VERDICTS}
        self._anomalies = metrics.model_anomalies.labels(role="shadow")

    def process(self, batch: Batch, live: ServingModel, live_scores: np.ndarray,
                live_anomalous: np.ndarray) -> list[tuple[int, OutputRecord]]:
        """Score the batch with the shadow model; (position, record) for each window it finds anomalous."""
        scores = self.model.scorer.score(batch.windows).scores
        anomalous = scores > self.model.threshold.value
        self.metrics.shadow_score.observe_many(scores)
        self._anomalies.inc(int(anomalous.sum()))
        for name, mask in zip(VERDICTS, (anomalous & live_anomalous, live_anomalous & ~anomalous,
                                         anomalous & ~live_anomalous, ~anomalous & ~live_anomalous), strict=True):
            if mask.any():
                self._agreement[name].inc(int(mask.sum()))
        out = []
        rows = batch.rows or [-1] * len(batch)
        for i in np.flatnonzero(anomalous).tolist():
            m, row = batch.messages[i], rows[i]
            source = batch.sources[i] or key_source(m)
            body: dict[str, Any] = {
                "schema": 1, "id": f"{m.topic}-{m.partition}-{m.offset}" + (f"-{row}" if row >= 0 else ""),
                "source": source,
                "input": {"topic": m.topic, "partition": m.partition, "offset": m.offset,
                          "window_id": batch.ids[i], **({"row": row} if row >= 0 else {})},
                "score": round(float(scores[i]), 6), "threshold": round(self.model.threshold.value, 6),
                "model": self.model.identity.as_dict(),
                "live": {"anomaly": bool(live_anomalous[i]), "score": round(float(live_scores[i]), 6),
                         "model": live.identity.as_dict()},
            }
            out.append((i, OutputRecord("shadow", self.topic, source.encode(), orjson.dumps(body), [], m)))
        return out
