"""Parallel and distributed runs: results do not depend on n_jobs or the backend.

``map_chunks`` is checked against a direct call; every algorithm that takes
``n_jobs`` is checked for bit-identical results with ``n_jobs`` in
``{1, 2, -1}`` and under ``joblib.parallel_config(backend="dask")`` with a
loopback ``LocalCluster`` (threads and processes), where the batches must
really run on the cluster (its task stream is not empty).
"""

from functools import partial

import joblib
import numpy as np
import pytest
import sklearn
from threadpoolctl import threadpool_info

import skbutterfly._parallel
from skbutterfly import (
    ButterflyFactorizer,
    FixedSupportFactorizer,
    QuantizedButterfly,
    block_diagonal_support,
    butterfly_factorize,
    fixed_support_factorize,
    lower_triangular_support,
    quantize_butterfly,
    upper_triangular_support,
)
from skbutterfly._block_svd import low_rank_blocks
from skbutterfly._parallel import map_chunks
from skbutterfly.datasets import add_noise, random_butterfly

N_JOBS = [1, 2, -1]


def _blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def _assert_identical(result, expected):
    if isinstance(expected, tuple):
        assert isinstance(result, tuple)
        assert len(result) == len(expected)
        for got, want in zip(result, expected):
            _assert_identical(got, want)
        return
    assert result.dtype == expected.dtype
    assert result.shape == expected.shape
    np.testing.assert_array_equal(result, expected)


def _row_stats(x, y):
    """A per-row function returning a tuple (module-level: picklable)."""
    return x * 2.0 + y, np.linalg.norm(x, axis=1)


# ----------------------------------------------------------------------------
# map_chunks on the default (threading) backend
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("n_jobs", [None, *N_JOBS])
@pytest.mark.parametrize("shape", [(64, 8, 8), (16, 40, 24), (5, 2, 64)])
def test_map_chunks_low_rank_blocks_bit_identical(n_jobs, shape):
    blocks = np.random.default_rng(0).standard_normal(shape)
    func = partial(low_rank_blocks, rank=2)
    expected = func(blocks)
    _assert_identical(map_chunks(func, (blocks,), n_jobs), expected)


@pytest.mark.parametrize("n_jobs", N_JOBS)
@pytest.mark.parametrize("total", [1, 2, 3, 7, 100])
def test_map_chunks_tuple_results_in_order(n_jobs, total):
    rng = np.random.default_rng(total)
    x = rng.standard_normal((total, 3))
    y = rng.standard_normal((total, 3))
    x_before, y_before = x.copy(), y.copy()
    result = map_chunks(_row_stats, (x, y), n_jobs)
    _assert_identical(result, _row_stats(x, y))
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(y, y_before)


@pytest.mark.parametrize("n_jobs", [2, -1])
def test_map_chunks_cuts_contiguous_chunks(n_jobs):
    seen = []

    def record(x):
        seen.append((int(x[0]), x.shape[0]))
        return x

    x = np.arange(10)
    np.testing.assert_array_equal(map_chunks(record, (x,), n_jobs), x)
    starts = sorted(seen)
    assert len(starts) == joblib.effective_n_jobs(n_jobs)
    assert starts[0][0] == 0
    for (start, size), (next_start, _) in zip(starts[:-1], starts[1:]):
        assert start + size == next_start
    assert sum(size for _, size in starts) == 10


def test_map_chunks_min_chunk_keeps_small_work_serial():
    calls = []

    def record(x):
        calls.append(x.shape[0])
        return x

    map_chunks(record, (np.arange(5),), 2, min_chunk=4)
    assert calls == [5]
    calls.clear()
    map_chunks(record, (np.arange(8),), 2, min_chunk=4)
    assert sorted(calls) == [4, 4]


def test_map_chunks_limits_blas_in_workers_and_restores_it():
    if not _blas_threads():
        pytest.skip("no BLAS library reported by threadpoolctl")
    before = _blas_threads()
    inside = []

    def record(x):
        inside.extend(_blas_threads())
        return x

    map_chunks(record, (np.arange(4),), 2)
    assert inside and set(inside) == {1}
    assert _blas_threads() == before


def test_map_chunks_propagates_sklearn_config():
    seen = []

    def record(x):
        seen.append(sklearn.get_config()["assume_finite"])
        return x

    with sklearn.config_context(assume_finite=True):
        map_chunks(record, (np.arange(4),), 2)
    assert seen == [True, True]


def test_map_chunks_follows_parallel_config_n_jobs():
    calls = []

    def record(x):
        calls.append(x.shape[0])
        return x

    with joblib.parallel_config(n_jobs=2):
        map_chunks(record, (np.arange(6),), None)
    assert sorted(calls) == [3, 3]


@pytest.mark.parametrize("n_jobs", ["2", 2.5, True, [2]])
def test_map_chunks_refuses_non_integer_n_jobs(n_jobs):
    with pytest.raises(TypeError, match="n_jobs"):
        map_chunks(np.negative, (np.arange(4),), n_jobs)


def test_map_chunks_refuses_zero_jobs():
    with pytest.raises(ValueError, match="n_jobs"):
        map_chunks(np.negative, (np.arange(4),), 0)


@pytest.mark.parametrize(
    "call",
    [
        lambda: butterfly_factorize(np.eye(8), n_jobs="2"),
        lambda: fixed_support_factorize(
            np.eye(4), *[np.ones((4, 2)), np.ones((2, 4))], n_jobs=2.5
        ),
        lambda: quantize_butterfly(random_butterfly(8, random_state=0), 4, n_jobs="x"),
    ],
    ids=["butterfly_factorize", "fixed_support_factorize", "quantize_butterfly"],
)
def test_algorithms_refuse_non_integer_n_jobs(call):
    with pytest.raises(TypeError, match="n_jobs"):
        call()


def test_low_rank_blocks_chunking_does_not_change_bits():
    # Half of the blocks converge at once (nearly rank 3), half slowly (flat
    # spectrum): cut in two chunks, the first stops early.
    rng = np.random.default_rng(0)
    fast = rng.standard_normal((8, 64, 3)) @ rng.standard_normal((8, 3, 64))
    fast += 1e-3 * rng.standard_normal((8, 64, 64))
    slow = rng.standard_normal((8, 64, 64)) * np.linspace(1.0, 0.9, 64)
    blocks = np.concatenate([fast, slow])
    func = partial(low_rank_blocks, rank=3)
    _assert_identical(map_chunks(func, (blocks,), 2), func(blocks))


# ----------------------------------------------------------------------------
# The algorithms: bit-identical for every n_jobs, and really parallel
# ----------------------------------------------------------------------------


@pytest.fixture
def parallel_runs(monkeypatch):
    """Record the number of chunks of every parallel region of map_chunks."""
    runs = []

    class CountingParallel(skbutterfly._parallel.Parallel):
        def __call__(self, iterable):
            results = super().__call__(iterable)
            runs.append(len(results))
            return results

    monkeypatch.setattr(skbutterfly._parallel, "Parallel", CountingParallel)
    return runs


def _noisy_butterfly(n, **kwargs):
    B = random_butterfly(n, random_state=0, **kwargs)
    return add_noise(B.toarray(), 0.1, random_state=1)


def _butterfly_run(n_jobs, dtype=np.float64, **kwargs):
    # N = 512: the deep splits have more blocks than butterfly_factorize
    # keeps serial, so n_jobs=2 really cuts them in chunks.
    A = _noisy_butterfly(512).astype(dtype)
    B = butterfly_factorize(A, n_jobs=n_jobs, **kwargs)
    return (*B.factors, B.perm) if B.perm is not None else B.factors


def _fsmf_exact_run(n_jobs):
    A = np.random.default_rng(0).standard_normal((32, 40))
    S_W = block_diagonal_support((32, 8), 8)
    S_H = block_diagonal_support((8, 40), 8)
    W, H, info = fixed_support_factorize(A, S_W, S_H, n_jobs=n_jobs)
    assert info.method == "exact"
    return W, H


def _fsmf_als_run(n_jobs):
    # LU supports are intractable: alternating least squares from n_restarts
    # seeded starts, one chunk of starts per job.
    A = np.random.default_rng(0).standard_normal((8, 8))
    # A zero first pivot: no LU, so every ALS start runs (in parallel).
    A[0, 0] = 0.0
    S_W, S_H = lower_triangular_support((8, 8)), upper_triangular_support((8, 8))
    W, H, info = fixed_support_factorize(
        A, S_W, S_H, n_restarts=4, max_iter=30, random_state=0, n_jobs=n_jobs
    )
    assert info.method == "als"
    return W, H


def _quantize_run(n_jobs, heuristic="pairwise"):
    B = random_butterfly(256, random_state=0)
    return quantize_butterfly(B, 4, heuristic=heuristic, n_jobs=n_jobs).factors


def _butterfly_estimator_run(n_jobs):
    est = ButterflyFactorizer(n_jobs=n_jobs).fit(_noisy_butterfly(512))
    return (*est.butterfly_.factors, np.array(est.relative_error_))


def _fixed_support_estimator_run(n_jobs):
    X = np.random.default_rng(0).standard_normal((8, 8))
    X[0, 0] = 0.0  # no LU: the ALS starts run (as above)
    est = FixedSupportFactorizer(
        support_W="lower",
        support_H="upper",
        n_restarts=4,
        max_iter=30,
        random_state=0,
        n_jobs=n_jobs,
    )
    W = est.fit_transform(X)
    return W, est.components_


def _quantized_estimator_run(n_jobs):
    est = QuantizedButterfly(precision=4, n_jobs=n_jobs)
    est.fit(random_butterfly(256, random_state=0).toarray())
    return (*est.butterfly_.factors, np.array(est.relative_error_))


ALGORITHMS = {
    "butterfly_factorize": _butterfly_run,
    "butterfly_factorize-float32": partial(_butterfly_run, dtype=np.float32),
    "butterfly_factorize-rank2-plain": partial(
        _butterfly_run, rank=2, orthonormalize=False
    ),
    "fixed_support_factorize-exact": _fsmf_exact_run,
    "fixed_support_factorize-als": _fsmf_als_run,
    "quantize_butterfly-pairwise": _quantize_run,
    "quantize_butterfly-left-to-right": partial(
        _quantize_run, heuristic="left-to-right"
    ),
    "ButterflyFactorizer": _butterfly_estimator_run,
    "FixedSupportFactorizer": _fixed_support_estimator_run,
    "QuantizedButterfly": _quantized_estimator_run,
}


@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_bit_identical_for_any_n_jobs(name, parallel_runs):
    run = ALGORITHMS[name]
    expected = run(1)
    assert parallel_runs == []
    for n_jobs in (2, -1):
        _assert_identical(tuple(run(n_jobs)), tuple(expected))
    # The comparison is not vacuous: the parallel runs cut work in chunks.
    assert parallel_runs and max(parallel_runs) >= 2


@pytest.mark.parametrize("name", ALGORITHMS)
def test_algorithm_deterministic_across_runs(name):
    run = ALGORITHMS[name]
    _assert_identical(tuple(run(2)), tuple(run(2)))


# ----------------------------------------------------------------------------
# Dask: a loopback LocalCluster, threads and processes
# ----------------------------------------------------------------------------


# Everything on the loopback interface: with dashboard_address=None the
# scheduler would still serve HTTP on 0.0.0.0:8787 and the workers on 0.0.0.0.
LOOPBACK = {
    "dashboard_address": "127.0.0.1:0",
    "worker_dashboard_address": "127.0.0.1:0",
}


def _listening_addresses():
    import psutil

    this = psutil.Process()
    return {
        conn.laddr.ip
        for proc in [this, *this.children(recursive=True)]
        for conn in proc.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
    }


@pytest.fixture(scope="module", params=["threads", "processes"])
def dask_client(request):
    distributed = pytest.importorskip(
        "distributed", reason="dask.distributed is not installed (extra 'dask')"
    )
    processes = request.param == "processes"
    # host= only for processes: with processes=False it breaks the inproc
    # scheduler address.
    extra = {"host": "127.0.0.1"} if processes else {}
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=processes,
            **LOOPBACK,
            **extra,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def test_dask_cluster_listens_on_loopback_only(dask_client):
    assert _listening_addresses() <= {"127.0.0.1"}


def _on_cluster(client, func):
    """Run ``func()`` with the dask backend; return its result and task count."""
    from distributed import get_task_stream

    with get_task_stream(client) as stream, joblib.parallel_config(backend="dask"):
        result = func()
    return result, len(stream.data)


@pytest.mark.parametrize("n_jobs", [None, -1])
def test_map_chunks_on_dask_cluster(dask_client, n_jobs):
    rng = np.random.default_rng(1)
    blocks = rng.standard_normal((32, 12, 10))
    func = partial(low_rank_blocks, rank=3)
    result, n_tasks = _on_cluster(
        dask_client, lambda: map_chunks(func, (blocks,), n_jobs)
    )
    assert n_tasks >= 2
    _assert_identical(result, func(blocks))
    x, y = rng.standard_normal((2, 9, 4))
    result, _ = _on_cluster(dask_client, lambda: map_chunks(_row_stats, (x, y), -1))
    _assert_identical(result, _row_stats(x, y))


@pytest.mark.parametrize(
    "name",
    [
        "butterfly_factorize",
        "fixed_support_factorize-exact",
        "fixed_support_factorize-als",
        "quantize_butterfly-pairwise",
        "ButterflyFactorizer",
        "QuantizedButterfly",
    ],
)
def test_algorithm_on_dask_cluster_equals_serial(dask_client, name):
    run = ALGORITHMS[name]
    expected = run(1)
    # n_jobs=None: inside the dask backend, joblib uses every worker thread.
    result, n_tasks = _on_cluster(dask_client, lambda: run(None))
    assert n_tasks >= 2
    _assert_identical(tuple(result), tuple(expected))


def test_seeded_generators_are_bit_identical_across_runs():
    first = random_butterfly(64, rank=2, random_state=7)
    second = random_butterfly(64, rank=2, random_state=7)
    _assert_identical(tuple(first.factors), tuple(second.factors))
    A = first.toarray()
    _assert_identical(
        add_noise(A, 0.1, random_state=3), add_noise(A, 0.1, random_state=3)
    )
    assert not np.array_equal(
        add_noise(A, 0.1, random_state=3), add_noise(A, 0.1, random_state=4)
    )
