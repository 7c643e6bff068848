"""The lazy per-window columns behave exactly like the lists they stand for (wire/columns.py)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from detector.wire.batch import decode_batch, encode_batch
from detector.wire.columns import (
    ArrowStrings,
    Chained,
    Repeated,
    RowBlocks,
    Times,
    as_array,
    concat,
    copy_rows,
    message_runs,
    messages_at,
    pick,
    to_arrow,
)

runs = st.lists(st.tuples(st.sampled_from("abcde"), st.integers(0, 5)), max_size=8)
names = st.lists(st.one_of(st.none(), st.text(max_size=3)), max_size=12)


def _parts(draw_runs: list[tuple[str, int]], strings: list[str | None], times: list[float]) -> list:
    """Each kind of column, with the list it stands for."""
    repeated = Repeated([v for v, _ in draw_runs], [c for _, c in draw_runs])
    expected_repeated = [v for v, c in draw_runs for _ in range(c)]
    seconds = np.array(times, dtype=np.float64)
    return [(repeated, expected_repeated), (ArrowStrings(pa.array(strings, pa.string())), strings),
            (Times(seconds), [None if t != t else t for t in times]), (range(len(strings)), list(range(len(strings))))]


@settings(max_examples=200, deadline=None)
@given(runs, names, st.lists(st.one_of(st.just(float("nan")), st.floats(0, 1e9)), max_size=10),
       st.integers(-15, 15), st.integers(-15, 15))
def test_every_column_reads_like_its_list(draw_runs, strings, times, start, stop):
    parts = _parts(draw_runs, strings, times)
    for column, expected in parts:
        assert len(column) == len(expected)
        assert list(column) == expected
        assert [column[i] for i in range(len(column))] == expected
        assert list(column[start:stop]) == expected[start:stop]
        positions = sorted({i % len(expected) for i in (start, stop, 0)}) if expected else []
        assert pick(column, positions) == [expected[i] for i in positions]
    chained = concat([c for c, _ in parts if isinstance(c, Repeated | ArrowStrings)])
    flat = [x for c, e in parts if isinstance(c, Repeated | ArrowStrings) for x in e]
    assert list(chained) == flat
    assert list(chained[start:stop]) == flat[start:stop]
    assert [chained[i] for i in range(len(flat))] == flat
    every_other = list(range(0, len(flat), 2))
    assert pick(chained, every_other) == [flat[i] for i in every_other]


def test_out_of_range_and_negative_indices_behave_like_a_list():
    column = Repeated(["a", "b"], [2, 1])
    assert column[-1] == "b" and column[-3] == "a"
    for bad in (3, -4):
        try:
            column[bad]
        except IndexError:
            continue
        raise AssertionError(f"index {bad} did not raise")


def test_message_runs_come_from_the_columns_without_walking_each_window():
    a, b, c = object(), object(), object()
    column = concat([Repeated([a, b], [3, 2]), Repeated([b, c], [1, 4])])
    assert isinstance(column, Chained)
    values, counts = message_runs(column)
    assert values == [a, b, c] and counts == [3, 3, 4]  # b's two parts meet: one run
    assert message_runs([a, a, b, a]) == ([a, b, a], [2, 1, 1])


def test_messages_at_names_each_position_s_message_from_runs_or_from_the_list():
    a, b, c = object(), object(), object()
    column = concat([Repeated([a, b], [3, 2]), Repeated([b, c], [1, 4])])
    runs, which = messages_at(column, np.array([0, 4, 5, 9]))
    assert [runs[k] for k in which] == [a, b, b, c]
    plain = [a, b, c, a]
    runs, which = messages_at(plain, np.array([1, 3]))
    assert runs == [b, a] and which.tolist() == [0, 1]  # only the asked positions are read


@settings(max_examples=100, deadline=None)
@given(runs, st.lists(st.one_of(st.just(float("nan")), st.floats(0, 1e9)), max_size=10))
def test_as_array_is_the_column_as_floats_with_none_as_nan(draw_runs, times):
    for column, expected in _parts([(float(len(v)), c) for v, c in draw_runs], [], times):
        if isinstance(column, ArrowStrings):
            continue
        want = np.array([np.nan if v is None else v for v in expected], np.float64)
        np.testing.assert_array_equal(as_array(column), want)
        np.testing.assert_array_equal(as_array(concat([column, [None, 2.0]])), np.append(want, [np.nan, 2.0]))


def test_concat_keeps_plain_lists_plain():
    assert concat([[1, 2], [3]]) == [1, 2, 3] and isinstance(concat([[1, 2], [3]]), list)
    assert concat([]) == [] and concat([[], range(0)]) == []


def test_to_arrow_gives_one_array_for_every_kind():
    column = concat([ArrowStrings(pa.array(["x", None])), Repeated([None], [2]), ["y"]])
    assert to_arrow(column, pa.string()).to_pylist() == ["x", None, None, None, "y"]
    assert to_arrow(range(2, 5), pa.int32()).to_pylist() == [2, 3, 4]


def test_a_decoded_batch_holds_columns_not_lists():
    values = np.arange(6 * 4, dtype=np.float32).reshape(6, 4)
    values[2, 1] = np.nan
    rows = decode_batch(encode_batch(values, [f"w{i}" for i in range(6)], None, [1.0, None, 3.0, 4.0, 5.0, 6.0]),
                        4)
    assert not isinstance(rows.ids, list) and not isinstance(rows.sources, list)
    assert list(rows.rows) == [0, 1, 3, 4, 5]
    assert list(rows.ids) == ["w0", "w1", "w3", "w4", "w5"]
    assert list(rows.sources) == [None] * 5
    assert list(rows.ts) == [1.0, None, 4.0, 5.0, 6.0]
    assert [r for r, _ in rows.errors] == [2]


def test_rows_whose_sum_overflows_are_still_finite_windows():
    values = np.full((3, 4), 3e38, dtype=np.float32)  # every row sums past float32's range
    values[1, 3] = np.inf
    rows = decode_batch(encode_batch(values), 4)
    assert list(rows.rows) == [0, 2] and [r for r, _ in rows.errors] == [1]


def test_row_blocks_read_like_the_joined_matrix():
    blocks = [np.full((n, 3), k, dtype=np.float32) for k, n in enumerate((2, 0, 3, 1))]
    joined = np.concatenate(blocks)
    rows = RowBlocks(blocks, 3)
    assert rows.shape == joined.shape and len(rows) == 6
    np.testing.assert_array_equal(np.asarray(rows), joined)
    for start, stop in ((0, 6), (1, 4), (2, 3), (5, 6), (4, 2)):
        np.testing.assert_array_equal(np.asarray(rows[start:stop]), joined[start:stop].reshape(-1, 3))
    np.testing.assert_array_equal(rows[-1], joined[-1])
    out = np.zeros((4, 3), np.float32)
    copy_rows(out, rows[1:5])
    np.testing.assert_array_equal(out, joined[1:5])


def test_row_blocks_copied_by_torch_land_where_numpy_puts_them():
    """The copy a CUDA batcher uses into pinned memory with model.threads > 1: torch for blocks above its grain
    size, numpy below; the same rows in the same places, read-only payload views included."""
    from detector.pipeline.batching import THREADED_COPY_MIN, _threaded_copy

    rng = np.random.default_rng(1)
    width = 140
    big = np.frombuffer(rng.normal(size=(300, width)).astype(np.float32).tobytes(), np.float32).reshape(-1, width)
    assert big.size > THREADED_COPY_MIN and not big.flags.writeable  # as a batched message's values arrive
    blocks = [rng.normal(size=(3, width)).astype(np.float32), big, rng.normal(size=(2, width)).astype(np.float32)]
    copy = _threaded_copy()
    for rows in (RowBlocks(blocks, width)[1:304], np.concatenate(blocks)[2:305], big):
        by_numpy, by_torch = np.zeros((len(rows), width), np.float32), np.zeros((len(rows), width), np.float32)
        copy_rows(by_numpy, rows)
        copy_rows(by_torch, rows, copy)
        np.testing.assert_array_equal(by_torch, by_numpy)
        assert by_torch.all()
