"""Why a window message is refused: `InvalidWindow` with a short stable reason code (a metric label and a
dead-letter header), and the numeric limits every format shares."""

from __future__ import annotations

import numpy as np

REASONS = (
    "empty",
    "oversized",
    "bad_encoding",
    "not_json",
    "not_object",
    "missing_values",
    "values_not_list",
    "values_not_object",
    "missing_channel",
    "unknown_channel",
    "wrong_length",
    "non_numeric",
    "non_finite",
    "out_of_range",
    "bad_field",
    "bad_batch",
)
F32 = np.dtype("<f4")
# Values beyond float32's range cannot be scored; reject them rather than overflow to inf.
MAX_ABS_VALUE = float(np.finfo(np.float32).max)


class InvalidWindow(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
