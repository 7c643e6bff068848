"""Multi-channel windows through the scaler, the wire format, the time split and point verdicts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.model.scaler import Scaler
from detector.wire.invalid import InvalidWindow
from detector.wire.records import RecordEncoder
from detector.wire.windows import WindowDecoder, encode_f32, encode_json
from trainer.pipeline import make_split
from trainer.points import point_metrics, point_verdicts
from trainer.presets import get_preset

CH = ("Current", "Pressure", "Flow")
L = 10


def _row(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=3 * L).astype(np.float32)


def test_global_minmax_is_per_channel_and_single_channel_stays_scalar() -> None:
    x = np.stack([np.concatenate([np.full(L, i), np.full(L, 10 + 2 * i), np.full(L, 5.0)]) for i in range(4)])
    s = Scaler.fit("global_minmax", x.astype(np.float32), channels=3)
    assert s.params == {"min": [0.0, 10.0, 5.0], "max": [3.0, 16.0, 5.0]}
    offset, scale = s.offset_and_scale(L, 3)
    assert offset.shape == (3 * L,) and scale[0] == 3.0 and scale[L] == 6.0
    assert scale[2 * L] == pytest.approx(5e-3)  # a constant channel: 0.1% of its level, never zero
    one = Scaler.fit("global_minmax", x[:, :L].astype(np.float32))
    assert one.params == {"min": 0.0, "max": 3.0}  # exactly what single-channel bundles always stored


def test_a_constant_series_trains_instead_of_being_refused() -> None:
    s = Scaler.fit("global_minmax", np.full((5, L), 7.0, np.float32))
    assert np.isfinite(s.transform(np.full((1, L), 8.0, np.float32))).all()
    assert s.transform(np.full((1, L), 7.07, np.float32))[0, 0] == pytest.approx(10.0, rel=1e-3)
    zero = Scaler.fit("channel_standard", np.zeros((5, L), np.float32))
    assert zero.transform(np.full((1, L), 0.001, np.float32))[0, 0] == pytest.approx(1.0)


def test_json_and_f32_multichannel_messages_decode_to_the_same_row() -> None:
    row = _row()
    decoder = WindowDecoder(L, "auto", channels=CH)
    by_json = decoder.decode(encode_json(row, channels=CH, source="pump-1", decimals=None))
    by_f32 = decoder.decode(encode_f32(row))
    np.testing.assert_array_equal(by_json.values, row)
    np.testing.assert_array_equal(by_f32.values, row)
    assert by_json.source == "pump-1"
    body = json.loads(encode_json(row, channels=CH))
    assert list(body["values"]) == list(CH) and len(body["values"]["Flow"]) == L
    many = WindowDecoder(L, "json", channels=CH).decode_many([encode_json(_row(i), channels=CH, decimals=None)
                                                              for i in range(5)])
    np.testing.assert_array_equal(many.windows, np.stack([_row(i) for i in range(5)]))


def _with(values: dict) -> bytes:
    return json.dumps({"values": values}).encode()


GOOD = {c: [0.0] * L for c in CH}


@pytest.mark.parametrize(
    ("payload", "reason", "detail"),
    [
        (_with({k: v for k, v in GOOD.items() if k != "Pressure"}), "missing_channel", "'Pressure'"),
        (_with({**GOOD, "Temperature": [0.0] * L}), "unknown_channel", "'Temperature'"),
        (_with({**GOOD, "Flow": [0.0] * (L - 1)}), "wrong_length", "channel 'Flow': 9 values"),
        (_with({**GOOD, "Current": [0.0] * 3 + ["x"] + [0.0] * (L - 4)}), "non_numeric", "Current.values[3]"),
        (b'{"values": {"Current": [' + b"NaN," * (L - 1) + b'NaN], "Pressure": [], "Flow": []}}', "non_finite",
         "Current.values[0]"),
        (json.dumps({"values": [0.0] * (3 * L)}).encode(), "values_not_object", "3 channels"),
        (_with({**GOOD, "Flow": "abc"}), "values_not_list", "channel 'Flow'"),
        (encode_f32(np.zeros(2 * L)), "wrong_length", "120 bytes"),
    ],
)
def test_malformed_multichannel_messages_are_refused_with_their_reason(payload: bytes, reason: str,
                                                                         detail: str) -> None:
    decoder = WindowDecoder(L, "auto", channels=CH)
    with pytest.raises(InvalidWindow) as err:
        decoder.decode(payload)
    assert err.value.reason == reason and detail in err.value.detail
    batch = WindowDecoder(L, "json" if payload.startswith(b"{") else "f32", channels=CH).decode_many([payload])
    assert [e.reason for _, e in batch.errors] == [reason]  # the bulk path gives the same verdict


def test_events_name_the_channel_and_segment_carrying_the_error() -> None:
    from detector.kafka.seams import InputMessage

    class Batch:
        def __init__(self) -> None:
            self.messages = [InputMessage("in", 0, 7, b"pump", b"", [], 1_700_000_000_000)]
            self.ids, self.sources, self.ts, self.rows = [None], [None], [None], [-1]

        def __len__(self) -> int:
            return 1

    shares = np.zeros((1, 3 * 2), np.float32)
    shares[0, 3] = 0.7  # channel 1 (Pressure), segment 1 of 2
    shares[0, 0] = 0.3
    encoder = RecordEncoder(model={"name": "m", "version": "1"}, threshold=1.0, bounds=[(0, 5), (5, 10)], top=2,
                            all_scores=False, channels=CH)
    record = json.loads(encoder.encode(Batch(), np.array([2.0]), np.array([True]), shares, 0.0)[0].value)
    assert record["segments"] == [{"channel": "Pressure", "start": 5, "end": 10, "share": 0.7},
                                  {"channel": "Current", "start": 0, "end": 5, "share": 0.3}]


def test_series_split_by_time_leave_a_window_between_parts() -> None:
    config = get_preset("default")  # validation 0.2, test 0.2
    split = make_split(200, config, seed=0, gap=6)
    assert split.fit.max() < split.val.min() and split.val.max() < split.test.min()
    assert split.val.min() - split.fit.max() > 6 and split.test.min() - split.val.max() > 6
    assert len(split.test) == 40
    with pytest.raises(ValueError, match="are too few for a time-ordered split"):
        make_split(12, config, seed=0, gap=6)


def test_point_verdicts_are_causal() -> None:
    ends = np.array([4, 6, 8])  # windows of 5 samples, stride 2
    verdicts = point_verdicts(ends, np.array([False, True, False]), 11)
    # points 0-3: no window has ended; 4-5: window ending at 4; 6-7: at 6 (anomalous); 8-10: at 8
    assert verdicts.tolist() == [False] * 6 + [True, True] + [False] * 3
    m = point_metrics(np.array([0, 0, 1, 1, 0], bool), np.array([0, 1, 1, 0, 0], bool))
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1)
    assert m["far"] == pytest.approx(100 / 3) and m["mar"] == pytest.approx(50.0) and m["f1"] == pytest.approx(0.5)
