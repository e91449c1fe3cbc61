"""The one chunk runner (qrprobe.chunks): plans that never cross a chunk, chunks committed once, whole and in plan
order whatever order their batches come back in, and the runner's calls to a job (extraction and labelling are
its real jobs: tests/test_extract_pipeline.py, tests/test_label_loop.py, tests/test_ray_backend.py)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from qrprobe.chunks import Backend, ChunkAssembler, plan_batches, run_chunks


@given(n=st.integers(1, 200), chunk_size=st.integers(1, 40), batch_size=st.integers(1, 50), data=st.data())
@settings(max_examples=200, deadline=None)
def test_a_plan_covers_the_chunks_rows_in_order_without_crossing_a_chunk(n, chunk_size, batch_size, data):
    n_chunks = -(-n // chunk_size)
    chunks = sorted(data.draw(st.sets(st.integers(0, n_chunks - 1))))
    plan = plan_batches(chunks, n, chunk_size, batch_size)
    expected = [r for c in chunks for r in range(c * chunk_size, min(n, (c + 1) * chunk_size))]
    assert [r for _, rows in plan for r in rows] == expected
    for chunk, rows in plan:
        assert 1 <= len(rows) <= batch_size
        assert all(chunk * chunk_size <= r < (chunk + 1) * chunk_size for r in rows)
        assert rows == list(range(rows[0], rows[-1] + 1))


@given(n=st.integers(1, 120), chunk_size=st.integers(1, 30), batch_size=st.integers(1, 12), seed=st.integers(0, 99))
@settings(max_examples=200, deadline=None)
def test_each_chunk_is_committed_once_whole_and_in_plan_order_whatever_the_arrival_order(n, chunk_size,
                                                                                         batch_size, seed):
    plan = plan_batches(range(-(-n // chunk_size)), n, chunk_size, batch_size)
    committed: list[tuple[int, list]] = []
    assembler = ChunkAssembler(plan, lambda chunk, results: committed.append((chunk, results)))
    order = list(range(len(plan)))
    random.Random(seed).shuffle(order)
    arrived: set[int] = set()
    for b in order:
        assembler.add(b, ("result", b))
        arrived.add(b)
        done = {c for c, _ in committed}
        for chunk in {c for c, _ in plan}:  # a chunk is committed exactly when its last batch has arrived
            assert (chunk in done) == all(i in arrived for i, (c, _) in enumerate(plan) if c == chunk)
    assert sorted(c for c, _ in committed) == sorted({c for c, _ in plan})
    for chunk, results in committed:
        assert results == [("result", b) for b, (c, _) in enumerate(plan) if c == chunk]
    assert not assembler.pending


class Recorder:
    """A toy job: a batch's result is the sum of its rows; the local backend runs the plan backwards."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.sums: dict[int, int] = {}

    def batch_size(self, backend: Backend) -> int:
        self.calls.append(("batch_size", backend.name))
        return 3

    def begin(self, backend, plan) -> None:
        self.calls.append(("begin", len(plan)))

    def run_local(self, plan, add) -> None:
        for b in reversed(range(len(plan))):
            add(b, sum(plan[b][1]))

    def received(self, b, result) -> None:
        self.calls.append(("received", b))

    def commit(self, chunk, results) -> None:
        self.calls.append(("commit", chunk))
        self.sums[chunk] = sum(results)


def test_the_local_backend_runs_the_jobs_plan_and_commits_each_chunk():
    job = Recorder()
    plan = run_chunks(job, [0, 2], n=10, chunk_size=4)  # chunk 2 holds rows 8, 9 only
    assert plan == [(0, [0, 1, 2]), (0, [3]), (2, [8, 9])]
    assert job.calls == [("batch_size", "local"), ("begin", 3), ("received", 2), ("commit", 2), ("received", 1),
                         ("received", 0), ("commit", 0)]
    assert job.sums == {0: 0 + 1 + 2 + 3, 2: 8 + 9}


def test_nothing_to_do_runs_nothing():
    job = Recorder()
    assert run_chunks(job, [], n=10, chunk_size=4) == []
    assert job.calls == [("batch_size", "local"), ("begin", 0)]
