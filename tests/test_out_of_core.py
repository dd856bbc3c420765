"""Out-of-core input (memory maps, slab reads, Dask arrays) and Dask products."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

from skbutterfly import (
    ButterflyFactorizer,
    FixedSupportFactorizer,
    architecture,
    bit_reversal_permutation,
    butterfly_factorize,
    fixed_support_factorize,
    standard_permutations,
)
from skbutterfly._slabs import slab_groups
from skbutterfly.datasets import add_noise, hadamard, random_butterfly

da = pytest.importorskip("dask.array")


def _matrix(shape, complex_, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=shape)
    if complex_:
        A = A + 1j * rng.normal(size=shape)
    return A


def _memmap(A, tmp_path, mode="r", name="a.npy"):
    path = tmp_path / name
    np.save(path, A)
    return np.load(path, mmap_mode=mode)


class SliceReader:
    """A matrix readable by slices only (like an h5py dataset), counting reads."""

    def __init__(self, A):
        self._A = A
        self.shape, self.dtype = A.shape, A.dtype
        self.largest_read = 0

    def __getitem__(self, key):
        rows, cols = key
        assert rows == slice(None)
        if not isinstance(cols, slice):
            cols = np.asarray(cols)
            assert np.all(np.diff(cols) > 0), "columns must be read in order"
        out = np.array(self._A[rows, cols])
        self.largest_read = max(self.largest_read, out.size)
        return out


CASES = [
    # shape, permutation, row permutation, complex, rank
    ((64, 64), None, None, False, 1),
    ((64, 64), "bit-reversal", "bit-reversal", True, 1),
    ((50, 70), None, "random", False, 1),
    ((50, 70), "random", "random", True, 2),
    ((128, 32), None, None, False, 2),
    ((32, 16), "default-8", ["000", "001"], False, 1),
    ((40, 100), "bit-reversal", "random", True, 1),
]


def _perm(permutation, shape, seed=1, axis=1):
    if permutation == "random":
        n = architecture(shape).padded_shape[axis]
        return np.random.default_rng(seed).permutation(n)
    return permutation


@pytest.mark.parametrize("shape, permutation, row_permutation, complex_, rank", CASES)
def test_memmap_dask_and_slices_give_the_in_memory_operator(
    shape, permutation, row_permutation, complex_, rank, tmp_path
):
    A = _matrix(shape, complex_)
    perms = {
        "permutation": _perm(permutation, shape),
        "row_permutation": _perm(row_permutation, shape, seed=2, axis=0),
    }
    expected = butterfly_factorize(A, rank=rank, **perms).toarray()
    if isinstance(perms["row_permutation"], np.ndarray):
        # The row permutation matters: ignoring it would show below.
        plain = butterfly_factorize(A, rank=rank, permutation=perms["permutation"])
        assert not np.allclose(plain.toarray(), expected)
    # A tiny budget: one group of columns per slab, so many slabs.
    inputs = {
        "memmap": _memmap(A, tmp_path),
        # Column-major on disk: column slabs are contiguous in the file.
        "memmap_f": _memmap(np.asfortranarray(A), tmp_path, name="f.npy"),
        # Chunks that align with nothing: rechunked by the slab reads.
        "dask": da.from_array(A, chunks=(7, 11)),
        "slices": SliceReader(A),
    }
    for name, X in inputs.items():
        B = butterfly_factorize(X, rank=rank, working_memory=1e-3, **perms)
        assert B.shape == shape and B.dtype == A.dtype, name
        assert_allclose(B.toarray(), expected, rtol=1e-12, atol=1e-12, err_msg=name)


def test_slab_reads_stay_within_the_budget():
    A = _matrix((256, 256), False)
    reader = SliceReader(A)
    budget = 0.25  # MiB, for 3 slab-sized arrays: 10922 float64 per slab
    B = butterfly_factorize(reader, working_memory=budget)
    assert_allclose(B.toarray(), butterfly_factorize(A).toarray(), atol=1e-12)
    assert 0 < reader.largest_read <= budget * 2**20 / 8 / 3
    assert reader.largest_read < A.size / 4


def test_estimator_error_on_out_of_core_input(tmp_path):
    # The error pass over the slabs against an independent dense reference,
    # with padding (50 x 70 is padded to 64 x 128) and a permutation.
    A = add_noise(
        random_butterfly(64, random_state=0).toarray()[:50, :60], 0.1, random_state=2
    )
    perm = _perm("random", A.shape)
    ref = ButterflyFactorizer(permutation=perm).fit(A)
    for X in (_memmap(A, tmp_path), da.from_array(A, chunks=(16, 16))):
        est = ButterflyFactorizer(permutation=perm).fit(X)
        dense = np.linalg.norm(A - est.butterfly_.toarray())
        assert_allclose(est.reconstruction_err_, dense, rtol=1e-10)
        assert_allclose(est.relative_error_, dense / np.linalg.norm(A), rtol=1e-10)
        assert_allclose(est.butterfly_.toarray(), ref.butterfly_.toarray(), atol=1e-12)
        assert est.n_features_in_ == 60


def test_candidates_are_compared_on_the_slabs(tmp_path):
    # Several permutation candidates: the error pass keeps the best one
    # (equivalent candidates may tie, so compare errors, not indices).
    A = add_noise(random_butterfly(32, random_state=3).toarray(), 0.01, random_state=4)
    A = A[:, np.argsort(bit_reversal_permutation(32))]
    errors = [
        np.linalg.norm(A - butterfly_factorize(A, permutation=perm).toarray())
        for perm in standard_permutations(32)
    ]
    B = butterfly_factorize(_memmap(A, tmp_path), permutation="default-8")
    assert_allclose(np.linalg.norm(A - B.toarray()), min(errors), rtol=1e-9)
    assert min(errors) < 0.1 * max(errors)


def test_verbose_prints_one_line_per_slab(tmp_path, capsys):
    A = _matrix((64, 64), False)
    butterfly_factorize(_memmap(A, tmp_path), working_memory=1e-3, verbose=1)
    lines = [s for s in capsys.readouterr().out.splitlines() if ": slab " in s]
    assert len(lines) == 8  # eight column groups of 8 at the root
    assert lines[-1].startswith("[butterfly_factorize] A: slab 8/8")
    # A Dask array's slabs follow its column chunks (here 16 columns wide).
    butterfly_factorize(da.from_array(A, chunks=(64, 16)), verbose=1)
    assert "[butterfly_factorize] A: 4 slabs" in capsys.readouterr().out


def test_memmap_is_not_modified(tmp_path):
    A = _matrix((32, 32), True)
    X = _memmap(A, tmp_path, mode="r+")
    butterfly_factorize(X, working_memory=1e-3)
    assert np.array_equal(np.asarray(X), A)


def _kernel_tile(block_info=None, nan_at=None):
    (r0, r1), (c0, c1) = block_info[None]["array-location"]
    x = np.arange(r0, r1)[:, None] / 64
    y = np.arange(c0, c1)[None, :] / 64
    tile = np.cos(x * y * 8)
    if nan_at is not None and r0 <= nan_at[0] < r1 and c0 <= nan_at[1] < c1:
        tile[nan_at[0] - r0, nan_at[1] - c0] = np.nan
    return tile


def test_lazy_dask_kernel_matches_in_memory():
    K = da.map_blocks(_kernel_tile, chunks=((20, 20, 24), (32, 32)), dtype=float)
    expected = butterfly_factorize(K.compute(), rank=2)
    B = butterfly_factorize(K, rank=2, working_memory=1e-3)
    assert_allclose(B.toarray(), expected.toarray(), atol=1e-12)


def test_nan_in_one_tile_raises_naming_the_input_and_the_tile(tmp_path):
    K = da.map_blocks(
        _kernel_tile, nan_at=(45, 37), chunks=((32, 32), (32, 32)), dtype=float
    )
    with pytest.raises(ValueError, match=r"A contains NaN or infinity: A\[45, 37\]"):
        butterfly_factorize(K, working_memory=1e-3)
    A = _matrix((64, 64), False)
    A[3, 60] = np.inf
    with pytest.raises(ValueError, match=r"X\[3, 60\] is inf, in the tile of rows"):
        ButterflyFactorizer().fit(_memmap(A, tmp_path))


class NotAnArray:
    shape = (4, 4)
    dtype = "float64"


def test_bad_inputs():
    with pytest.raises(TypeError, match="A must hold numbers"):
        butterfly_factorize(object())
    with pytest.raises(TypeError, match="A must hold numbers"):
        butterfly_factorize(NotAnArray())
    with pytest.raises(TypeError, match="dtype=object"):
        butterfly_factorize(
            da.from_array(np.full((4, 4), None, dtype=object), chunks=2)
        )
    with pytest.raises(ValueError, match="2-D array, got an array with ndim=3"):
        butterfly_factorize(da.zeros((4, 4, 4)))
    unknown = da.ones((8, 8), chunks=4)
    unknown = unknown[unknown[:, 0] > 0]
    with pytest.raises(ValueError, match="A must have a known shape"):
        butterfly_factorize(unknown)
    with pytest.raises(ValueError, match="A is empty"):
        butterfly_factorize(da.zeros((0, 4)))
    with pytest.raises(ValueError, match="working_memory must be a positive"):
        butterfly_factorize(da.zeros((4, 4)), working_memory=0)


def test_integer_memmap_is_cast(tmp_path):
    A = np.random.default_rng(0).integers(-5, 5, size=(16, 16))
    B = butterfly_factorize(_memmap(A, tmp_path))
    assert B.dtype == np.float64
    assert_allclose(B.toarray(), butterfly_factorize(A).toarray(), atol=1e-12)


def test_slab_groups_cover_every_group_within_the_budget():
    rows, c2, alpha, itemsize = 256, 16, 64, 8
    for mib in (1e-6, 0.1, 0.5, 1, 1000):
        groups = slab_groups(rows, c2, alpha, itemsize, mib)
        assert [g for lo, hi in groups for g in range(lo, hi)] == list(range(alpha))
        widest = max(hi - lo for lo, hi in groups)
        assert widest == 1 or 3 * rows * c2 * widest * itemsize <= mib * 2**20
    assert len(slab_groups(rows, c2, alpha, itemsize, 1000)) == 1
    assert slab_groups(rows, c2, alpha, itemsize, 1000, max_groups=30)[-1] == (60, 64)


def test_dask_products_and_transforms():
    B = random_butterfly(64, random_state=0)
    est = ButterflyFactorizer().fit(B.toarray()[:, :48])
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 48))
    Xd = da.from_array(X, chunks=(70, 13))
    T = est.transform(Xd)
    assert isinstance(T, da.Array) and T.chunks[0] == Xd.chunks[0]
    assert_allclose(T.compute(), est.transform(X), atol=1e-12)
    C = rng.normal(size=(300, 64))
    inv = est.inverse_transform(da.from_array(C, chunks=(100, 30)))
    assert isinstance(inv, da.Array)
    assert_allclose(inv.compute(), est.inverse_transform(C), atol=1e-12)
    Y = rng.normal(size=(64, 20)) + 1j * rng.normal(size=(64, 20))
    Yd = da.from_array(Y, chunks=(10, 7))
    dense = B.toarray()
    assert_allclose((B @ Yd).compute(), dense @ Y, atol=1e-12)
    assert_allclose(B.H.matmat(Yd).compute(), dense.conj().T @ Y, atol=1e-12)
    assert_allclose(B.rmatmat(Yd).compute(), dense.conj().T @ Y, atol=1e-12)
    y = da.from_array(Y[:, 0], chunks=10)
    assert_allclose((B @ y).compute(), dense @ Y[:, 0], atol=1e-12)
    with pytest.raises(ValueError, match="with 64 rows for an operator"):
        B @ da.ones((3, 3))
    with pytest.raises(ValueError, match="with 48 columns"):
        est.transform(da.ones((5, 47)))


def test_on_a_distributed_client():
    distributed = pytest.importorskip("distributed")
    A = _matrix((64, 64), True)
    expected = butterfly_factorize(A, permutation="bit-reversal")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster),
    ):
        X = da.from_array(A, chunks=(32, 16))
        B = butterfly_factorize(X, permutation="bit-reversal", working_memory=1e-3)
        est = ButterflyFactorizer().fit(X)
        T = est.transform(X).compute()
    assert_allclose(B.toarray(), expected.toarray(), atol=1e-12)
    assert_allclose(T, est.transform(A), atol=1e-12)


def test_h5py_dataset_gives_the_in_memory_operator(tmp_path):
    h5py = pytest.importorskip("h5py")
    A = _matrix((50, 70), True)
    perm = _perm("random", A.shape)
    row_perm = _perm("random", A.shape, seed=2, axis=0)
    expected = butterfly_factorize(A, permutation=perm, row_permutation=row_perm)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("A", data=A, chunks=(10, 10))
    with h5py.File(tmp_path / "a.h5", "r") as f:
        dataset = f["A"]
        B = butterfly_factorize(
            dataset, permutation=perm, row_permutation=row_perm, working_memory=1e-3
        )
        est = ButterflyFactorizer(permutation=perm, row_permutation=row_perm)
        est.fit(dataset)
    assert_allclose(B.toarray(), expected.toarray(), rtol=1e-12, atol=1e-12)
    dense = np.linalg.norm(A - est.butterfly_.toarray())
    assert_allclose(est.reconstruction_err_, dense, rtol=1e-10)


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_extreme_magnitudes_are_rescaled_like_in_memory(scale, tmp_path):
    # Squares of 1e300 overflow and of 1e-300 underflow: the slabs must be
    # brought near one by a power of two, as the in-memory input is.
    A = add_noise(random_butterfly(64, random_state=0).toarray(), 0.1, random_state=1)
    A = A[:, :60] * scale
    perm = _perm("random", A.shape)
    ref = ButterflyFactorizer(permutation=perm).fit(A)
    for X in (_memmap(A, tmp_path), da.from_array(A, chunks=(16, 16))):
        est = ButterflyFactorizer(permutation=perm).fit(X)
        B = est.butterfly_
        assert all(np.isfinite(K).all() for K in B.factors)
        assert_allclose(
            B.toarray() / scale, ref.butterfly_.toarray() / scale, atol=1e-12
        )
        dense = np.linalg.norm(A / scale - B.toarray() / scale) * scale
        assert 0 < dense < np.inf
        assert_allclose(est.reconstruction_err_, dense, rtol=1e-10)
        assert_allclose(est.relative_error_, ref.relative_error_, rtol=1e-10)
        assert 0.01 < est.relative_error_ < 0.5


def test_mixed_magnitudes_across_slabs(tmp_path):
    # One slab tiny, the others ordinary: each slab is solved at its own
    # scale and its factors are brought to the matrix's.
    A = _matrix((64, 64), False)
    A[:, :8] *= 1e-200
    B = butterfly_factorize(_memmap(A, tmp_path), working_memory=1e-3)
    expected = butterfly_factorize(A).toarray()
    assert_allclose(B.toarray(), expected, atol=1e-12)
    A = _matrix((64, 64), False) * 1e250
    A[:, :8] *= 1e50
    expected = butterfly_factorize(A).toarray() / 1e300
    B = butterfly_factorize(_memmap(A, tmp_path, name="b.npy"), working_memory=1e-3)
    assert_allclose(B.toarray() / 1e300, expected, atol=1e-12)


def test_searches_are_refused_with_the_reason(tmp_path):
    A = _memmap(hadamard(16), tmp_path)
    for side in ("permutation", "row_permutation"):
        for search in ("auto", "learn"):
            kwargs = {side: search}
            if search == "learn":
                kwargs = {"permutation": "learn", "row_permutation": "learn"}
            with pytest.raises(
                ValueError, match=rf"permutation='{search}' needs the matrix in memory"
            ):
                butterfly_factorize(A, **kwargs)
        with pytest.raises(ValueError, match=rf"^{side}='auto' needs .* X is out"):
            ButterflyFactorizer(**{side: "auto"}).fit(A)


def test_fixed_support_solvers_refuse_out_of_core_input(tmp_path):
    S_W = np.kron(np.eye(4), np.ones((4, 1)))
    S_H = np.kron(np.eye(4), np.ones((1, 4)))
    A = _matrix((16, 16), False)
    for X in (da.from_array(A, chunks=8), SliceReader(A)):
        with pytest.raises(
            ValueError, match="fixed_support_factorize needs A in memory"
        ):
            fixed_support_factorize(X, S_W, S_H)
        with pytest.raises(
            ValueError, match="FixedSupportFactorizer needs X in memory"
        ):
            FixedSupportFactorizer(support_W=S_W, support_H=S_H).fit(X)
    # A memory map is an ndarray: read whole, the same result.
    W, H, *_ = fixed_support_factorize(_memmap(A, tmp_path), S_W, S_H)
    W0, H0, *_ = fixed_support_factorize(A, S_W, S_H)
    assert_allclose(W @ H, W0 @ H0, atol=1e-12)
