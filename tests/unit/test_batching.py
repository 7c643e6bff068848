"""MicroBatcher: batches by size and by time, columns kept together, and a taken batch left intact while the next
one fills (the two buffers it takes in turn)."""

from __future__ import annotations

import numpy as np

from detector.kafka.seams import InputMessage
from detector.pipeline.batching import MicroBatcher


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def msgs(start: int, n: int) -> list[InputMessage]:
    return [InputMessage("in", 0, start + i, None, b"", [], 0) for i in range(n)]


def add(b: MicroBatcher, start: int, n: int, fill: float) -> int:
    windows = np.full((n, 3), fill, np.float32)
    return b.add(windows, msgs(start, n), [f"id{start + i}" for i in range(n)], ["s"] * n, [None] * n)


def test_size_and_time_make_a_batch_ready() -> None:
    clock = Clock()
    b = MicroBatcher(window=3, max_size=4, max_wait_s=0.5, clock=clock)
    assert add(b, 0, 6, 1.0) == 4  # only what fits is taken
    assert b.full and b.ready()
    batch = b.take()
    assert len(batch) == 4 and batch.ids == ["id0", "id1", "id2", "id3"] and batch.rows == [-1] * 4
    add(b, 4, 1, 2.0)
    assert not b.ready() and b.time_left() == 0.5
    clock.t = 0.5
    assert b.ready()


def test_a_taken_batch_is_not_overwritten_by_the_next_one() -> None:
    b = MicroBatcher(window=3, max_size=4, max_wait_s=0.0, clock=Clock())
    add(b, 0, 4, 1.0)
    first = b.take()
    add(b, 4, 4, 2.0)
    second = b.take()
    assert np.all(first.windows == 1.0) and np.all(second.windows == 2.0)
    assert first.windows.shape == (4, 3) and [m.offset for m in second.messages] == [4, 5, 6, 7]


def test_dropping_revoked_partitions_keeps_the_rest_in_order() -> None:
    b = MicroBatcher(window=3, max_size=8, max_wait_s=1.0, clock=Clock())
    mine = [InputMessage("in", i % 2, i, None, b"", [], 0) for i in range(6)]
    windows = np.arange(18, dtype=np.float32).reshape(6, 3)
    b.add(windows, mine, [str(i) for i in range(6)], ["s"] * 6, [None] * 6)
    assert b.drop_partitions({("in", 1)}) == 3
    batch = b.take()
    assert batch.ids == ["0", "2", "4"] and batch.windows[:, 0].tolist() == [0.0, 6.0, 12.0]


def test_batched_columns_stay_lazy_and_row_blocks_are_copied_in() -> None:
    """Batched messages' parts keep their columns (no per-window list); their row blocks are copied in as given."""
    from detector.wire.columns import Repeated, RowBlocks

    blocks = [np.full((n, 3), k, np.float32) for k, n in enumerate((3, 2))]
    for block in blocks:
        block.setflags(write=False)  # as Arrow's buffers are
    message_a, message_b = msgs(0, 2)
    b = MicroBatcher(window=3, max_size=4, max_wait_s=0.5, clock=Clock())
    taken = b.add(RowBlocks(blocks, 3), Repeated([message_a, message_b], [3, 2]), Repeated([None], [5]),
                  Repeated(["s"], [5]), Repeated([None], [5]), [*range(3), *range(2)])
    assert taken == 4 and b.full
    batch = b.take()
    assert isinstance(batch.messages, Repeated) and list(batch.messages) == [message_a] * 3 + [message_b]
    np.testing.assert_array_equal(batch.windows, np.concatenate(blocks)[:4])
