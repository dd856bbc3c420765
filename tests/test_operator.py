"""ButterflyMatrix: products, adjoints, exports, persistence and input checks.

References are independent of the product code: dense products of
``ks_to_dense`` factors, explicit radix-2 FFT factors, ``scipy.linalg``.
"""

import json
import os
import tracemalloc
import zipfile
from functools import reduce

import numpy as np
import pytest
import scipy.linalg
import scipy.sparse as sp
import scipy.sparse.linalg
from hypothesis import given
from hypothesis import strategies as st
from strategies import butterflies, operands, tolerance

import skbutterfly._io as io_module
from skbutterfly import ButterflyMatrix, architecture, bit_reversal_permutation, load
from skbutterfly._ks import ks_to_dense
from skbutterfly.datasets import random_butterfly


def reference_matrix(B, absolute=False):
    """Dense matrix of B from its stored factors: E[row_perm]^T F_1 ... F_J E[perm].

    Cropped to ``B.shape``.
    """
    dense = [ks_to_dense(K.astype(np.complex128)) for K in B.factors]
    if absolute:
        dense = [np.abs(D) for D in dense]
    m, n = B.shape
    gather = np.eye(B.padded_shape[1])[:, :n]
    if B.perm is not None:
        gather = gather[B.perm]
    scatter = np.eye(B.padded_shape[0])[:m]
    if B.row_perm is not None:
        scatter = np.eye(B.padded_shape[0])[B.row_perm].T[:m]
    return scatter @ reduce(np.matmul, dense) @ gather


def assert_close(actual, desired, bound, dtype):
    """Entrywise error within tolerance(dtype) times the absolute-value bound."""
    atol = tolerance(dtype) * (np.max(bound) + 1e-30)
    np.testing.assert_allclose(actual, desired, rtol=0, atol=atol)


def hadamard_factors(N):
    h = np.array([[1.0, 1.0], [1.0, -1.0]])
    L = N.bit_length() - 1
    return [
        np.broadcast_to(h[None, :, :, None], (2 ** (k - 1), 2, 2, N >> k)).copy()
        for k in range(1, L + 1)
    ]


def dft_factors(N):
    """Radix-2 decimation-in-time factors: blocks [[1, w], [1, -w]]."""
    L = N.bit_length() - 1
    factors = []
    for k in range(1, L + 1):
        d = N >> k
        w = np.exp(-2j * np.pi * np.arange(d) / (2 * d))
        K = np.empty((2 ** (k - 1), 2, 2, d), dtype=complex)
        K[:, 0, 0], K[:, 0, 1], K[:, 1, 0], K[:, 1, 1] = 1, w, 1, -w
        factors.append(K)
    return factors


# -- products ---------------------------------------------------------------


@given(data=st.data(), B=butterflies())
def test_product_matches_dense_factor_product(data, B):
    X = data.draw(operands(B.shape[1], B.dtype))
    A = reference_matrix(B)
    bound = reference_matrix(B, absolute=True) @ np.abs(X)
    Y = B @ X
    assert Y.shape == (B.shape[0], *X.shape[1:])
    assert Y.dtype == B.dtype
    assert_close(Y, A @ X, bound, B.dtype)
    assert_close(B.toarray(), A, reference_matrix(B, absolute=True), B.dtype)
    assert_close(Y, B.toarray() @ X, bound, B.dtype)


@given(data=st.data(), B=butterflies())
def test_adjoint_identity_and_adjoint_operators(data, B):
    m, n = B.shape
    x = data.draw(operands(n, B.dtype))
    y = data.draw(operands(m, B.dtype))
    x, y = x.reshape(n, -1)[:, :1], y.reshape(m, -1)[:, :1]
    A = reference_matrix(B)
    absA = reference_matrix(B, absolute=True)
    scale = (np.abs(y).T @ absA @ np.abs(x)).item()
    lhs = np.vdot(y, B @ x)
    rhs = np.vdot(B.H @ y, x)
    assert abs(lhs - rhs) <= 10 * tolerance(B.dtype) * scale
    assert_close(B.H @ np.eye(m), A.conj().T, absA.T, B.dtype)
    assert_close(B.T @ np.eye(m), A.T, absA.T, B.dtype)
    assert_close(B.H.H @ np.eye(n), A, absA, B.dtype)
    assert_close(B.T.H @ np.eye(n), A.conj(), absA, B.dtype)
    Y = data.draw(operands(m, B.dtype))
    Ymat = Y.reshape(m, -1)
    bound = absA.T @ np.abs(Ymat)
    assert_close(B.rmatmat(Ymat), A.conj().T @ Ymat, bound, B.dtype)
    assert_close(B.rmatvec(Ymat[:, 0]), A.conj().T @ Ymat[:, 0], bound[:, 0], B.dtype)
    assert_close(B.T.matmat(Ymat), A.T @ Ymat, bound, B.dtype)
    assert_close(B.T.rmatmat(x), A.conj() @ x, absA @ np.abs(x), B.dtype)


@pytest.mark.parametrize("N", [2, 4, 8, 16, 64, 256])
def test_dft_is_radix2_factors_times_bit_reversal(N):
    B = ButterflyMatrix(dft_factors(N), perm=bit_reversal_permutation(N))
    np.testing.assert_allclose(B.toarray(), scipy.linalg.dft(N), atol=1e-12 * N)
    x = np.random.default_rng(N).standard_normal((N, 3))
    np.testing.assert_allclose(B @ x, np.fft.fft(x, axis=0), atol=1e-12 * N)
    np.testing.assert_allclose(B @ x[:, 0], np.fft.fft(x[:, 0]), atol=1e-12 * N)


@pytest.mark.parametrize("N", [2, 8, 32, 128])
def test_hadamard_is_product_of_its_factors(N):
    B = ButterflyMatrix(hadamard_factors(N))
    np.testing.assert_array_equal(B.toarray(), scipy.linalg.hadamard(N))
    np.testing.assert_array_equal(B.H @ np.eye(N), scipy.linalg.hadamard(N))


@given(B=butterflies())
def test_factors_sparse_product_equals_toarray(B):
    mats = B.factors_sparse()
    assert all(M.format == "csr" for M in mats)
    P = reduce(lambda L, R: L @ R, mats).toarray()
    assert P.shape == B.shape
    assert_close(P, B.toarray(), reference_matrix(B, absolute=True), B.dtype)


@given(B=butterflies())
def test_nnz_flops_and_structure_follow_the_patterns(B):
    assert B.nnz == sum(a * b * c * d for a, b, c, d in B.patterns)
    assert B.flops == 2 * B.nnz
    assert B.n_factors == len(B.factors) == len(B.patterns)
    assert B.padded_shape == (B.patterns[0].shape[0], B.patterns[-1].shape[1])
    for K, p in zip(B.factors, B.patterns):
        assert K.shape == tuple(p)
        assert not K.flags.writeable
        # Each stored value is one entry of the dense factor, on the pattern.
        assert np.count_nonzero(ks_to_dense(np.ones(K.shape))) == p.nnz


@pytest.mark.parametrize("dtype", [np.float32, np.complex64])
def test_single_precision_is_kept(dtype):
    B = random_butterfly((16, 12), dtype=dtype, random_state=0)
    x = np.ones(12, dtype=dtype)
    assert (B @ x).dtype == dtype
    assert (B @ np.ones((12, 20), dtype=dtype)).dtype == dtype
    assert (B.H @ np.ones(16, dtype=dtype)).dtype == dtype
    assert B.toarray().dtype == dtype


def test_complex_operator_times_real_input_is_complex():
    B = random_butterfly(8, dtype=np.complex128, random_state=0)
    x = np.arange(8.0)
    np.testing.assert_allclose(B @ x, B.toarray() @ x, atol=1e-12)
    assert (B @ x).dtype == np.complex128


def test_sparse_and_list_operands_are_densified():
    B = random_butterfly((8, 6), random_state=0)
    X = np.arange(18.0).reshape(6, 3)
    np.testing.assert_allclose(B @ sp.csr_array(X), B @ X, atol=1e-12)
    np.testing.assert_allclose(B.H @ sp.csr_array(B @ X), B.H @ (B @ X), atol=1e-12)
    np.testing.assert_allclose(B @ list(X[:, 0]), B @ X[:, 0], atol=1e-12)


def test_integer_and_boolean_inputs_are_promoted():
    B = random_butterfly(8, random_state=0)
    A = B.toarray()
    np.testing.assert_allclose(B @ np.arange(8), A @ np.arange(8.0), atol=1e-12)
    np.testing.assert_allclose(B @ np.ones(8, bool), A.sum(axis=1), atol=1e-12)


def test_inputs_are_not_modified_and_read_only_inputs_work():
    rng = np.random.default_rng(0)
    factors = [rng.standard_normal(p) for p in architecture((8, 8))]
    perm = rng.permutation(8)
    copies = [K.copy() for K in factors] + [perm.copy()]
    for arr in [*factors, perm]:
        arr.flags.writeable = False
    B = ButterflyMatrix(factors, perm=perm)
    for X in (np.arange(8.0), np.arange(24.0).reshape(8, 3)):
        X.flags.writeable = False
        before = X.copy()
        B @ X
        B.H @ X
        np.testing.assert_array_equal(X, before)
    for arr, copy in zip([*factors, perm], copies):
        np.testing.assert_array_equal(arr, copy)
    assert B.factors[0] is not factors[0] and B.perm is not perm


@pytest.mark.parametrize("columns", [1, 64])
def test_product_memory_is_linear_in_size(columns):
    # N * N doubles would be 32 MB; O(N * columns) temporaries are far less.
    N = 2048
    B = random_butterfly(N, random_state=0)
    X = np.ones((N, columns))
    B @ X  # build the plans outside the measure
    B.H @ X
    tracemalloc.start()
    B @ X
    B.H @ X
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 16 * X.nbytes + 2**20
    assert peak < N * N * 8 / 4


# -- input checks -------------------------------------------------------------


def test_wrong_operand_shapes_name_expected_and_given():
    B = random_butterfly((8, 6), random_state=0)
    with pytest.raises(ValueError, match=r"shape \(6,\).*got shape=\(5,\)"):
        B @ np.ones(5)
    with pytest.raises(ValueError, match=r"\(6, n_columns\).*got shape=\(5, 3\)"):
        B @ np.ones((5, 3))
    with pytest.raises(ValueError, match=r"shape \(8,\).*got shape=\(6,\)"):
        B.rmatvec(np.ones(6))
    with pytest.raises(ValueError, match=r"\(8, n_columns\).*got shape=\(6, 2\)"):
        B.H @ np.ones((6, 2))
    with pytest.raises(ValueError, match=r"\(8, n_columns\).*got shape=\(6, 2\)"):
        B.T.matmat(np.ones((6, 2)))


@pytest.mark.parametrize("bad", [np.array(["a"] * 6), np.array([object()] * 6)])
def test_non_numeric_operands_raise_type_error(bad):
    B = random_butterfly((8, 6), random_state=0)
    with pytest.raises(TypeError, match="must hold numbers"):
        B @ bad


def test_non_chainable_factors_raise():
    rng = np.random.default_rng(0)
    for left, right in [((2, 2, 2, 1), (1, 2, 2, 2)), ((1, 2, 2, 2), (1, 2, 2, 1))]:
        with pytest.raises(ValueError, match="not chainable"):
            ButterflyMatrix([rng.standard_normal(left), rng.standard_normal(right)])
    # The classic factors listed right to left are not chainable either.
    factors = [rng.standard_normal(p) for p in architecture((8, 8))]
    with pytest.raises(ValueError, match="not chainable"):
        ButterflyMatrix(factors[::-1])


@pytest.mark.parametrize(
    "perm, error, match",
    [
        ([0, 1, 2, 2, 4, 5, 6, 7], ValueError, "not a permutation"),
        ([0, 1, 2, 3, 4, 5, 6, 8], ValueError, "not a permutation"),
        ([-1, 1, 2, 3, 4, 5, 6, 7], ValueError, "not a permutation"),
        (list(range(7)), ValueError, r"shape \(8,\)"),
        ([list(range(8))], ValueError, r"shape \(8,\)"),
        (np.arange(8) + 0.5, TypeError, "integers"),
        (["a"] * 8, TypeError, "integers"),
    ],
)
@pytest.mark.parametrize("name", ["perm", "row_perm"])
def test_invalid_permutations_raise(perm, error, match, name):
    factors = [np.ones(p) for p in architecture((8, 8))]
    with pytest.raises(error, match=f"^{name}.*{match}"):
        ButterflyMatrix(factors, **{name: perm})


def test_row_permutation_of_padded_output_has_the_padded_length():
    # (5, 8) pads its rows to 8: row_perm permutes range(8), not range(5).
    factors = [np.ones(p) for p in architecture((5, 8))]
    with pytest.raises(ValueError, match=r"row_perm.*shape \(8,\)"):
        ButterflyMatrix(factors, shape=(5, 8), row_perm=np.arange(5))
    B = ButterflyMatrix(factors, shape=(5, 8), row_perm=np.arange(8)[::-1])
    assert B.toarray().shape == (5, 8)


def test_row_permutation_permutes_the_rows_of_the_dense_matrix():
    rng = np.random.default_rng(0)
    perm, row_perm = rng.permutation(16), rng.permutation(16)
    plain = random_butterfly(16, rank=2, random_state=0)
    B = random_butterfly(
        16, rank=2, permutation=perm, row_permutation=row_perm, random_state=0
    )
    # The factors approximate A[row_perm][:, perm]: the one meaning.
    np.testing.assert_allclose(B.toarray()[row_perm][:, perm], plain.toarray())
    x = rng.standard_normal(16)
    np.testing.assert_allclose(B @ x, B.toarray() @ x)
    assert "rows permuted" in repr(B) and B.nnz == plain.nnz
    assert B.flops == plain.flops


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_factors_raise(bad):
    factors = [np.ones(p) for p in architecture((8, 8))]
    factors[1][0, 0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"factors\[1\] contains NaN or infinity"):
        ButterflyMatrix(factors)


@pytest.mark.parametrize(
    "factors, error, match",
    [
        ([np.array([["a"]], dtype=object).reshape(1, 1, 1, 1)], TypeError, "dtype"),
        ([np.array(["a"]).reshape(1, 1, 1, 1)], TypeError, "dtype"),
        ([np.ones((2, 2))], ValueError, "4-D"),
        ([], ValueError, "at least one factor"),
        (3.0, TypeError, "sequence of 4-D arrays"),
    ],
)
def test_bad_factors_raise(factors, error, match):
    with pytest.raises(error, match=match):
        ButterflyMatrix(factors)


@pytest.mark.parametrize("shape", [(9, 8), (8, 0), (2, 3, 4), "ab"])
def test_bad_shape_raises(shape):
    factors = [np.ones(p) for p in architecture((8, 8))]
    with pytest.raises(ValueError, match="shape"):
        ButterflyMatrix(factors, shape=shape)


def test_factors_of_mixed_dtypes_share_the_result_type():
    f32 = [np.ones(p, dtype=np.float32) for p in architecture((4, 4))]
    f32[0] = f32[0].astype(np.complex64)
    assert ButterflyMatrix(f32).dtype == np.complex64


# -- persistence ----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.complex64, np.complex128])
@pytest.mark.parametrize("permuted", [False, True])
def test_save_load_round_trip_is_bit_exact(tmp_path, dtype, permuted):
    shape = (10, 7)
    m_out, n_in = architecture(shape, n_factors=3, rank=2).padded_shape
    rng = np.random.default_rng(1)
    perm = rng.permutation(n_in) if permuted else None
    row_perm = rng.permutation(m_out) if permuted else None
    B = random_butterfly(
        shape,
        n_factors=3,
        rank=2,
        permutation=perm,
        row_permutation=row_perm,
        dtype=dtype,
        random_state=0,
    )
    path = tmp_path / "b.npz"
    B.save(path)
    C = load(path)
    assert C.shape == B.shape and C.dtype == B.dtype
    assert C.padded_shape == B.padded_shape and C.patterns == B.patterns
    for K, L in zip(B.factors, C.factors):
        assert K.dtype == L.dtype
        np.testing.assert_array_equal(K, L)
    if permuted:
        np.testing.assert_array_equal(C.perm, B.perm)
        np.testing.assert_array_equal(C.row_perm, B.row_perm)
    else:
        assert C.perm is None and C.row_perm is None
    np.testing.assert_array_equal(C.toarray(), B.toarray())
    load(str(path))  # str paths too


def test_files_written_before_row_permutations_still_load():
    # Written by skbutterfly's file format version 1 (before row_perm).
    data = os.path.join(os.path.dirname(__file__), "data")
    B = load(os.path.join(data, "butterfly_v1_perm.npz"))
    with np.load(os.path.join(data, "butterfly_v1_perm.npz")) as archive:
        assert int(archive["version"]) == 1 and "row_perm" not in archive.files
    assert B.row_perm is None and B.perm is not None
    expected = np.load(os.path.join(data, "butterfly_v1_perm_dense.npy"))
    np.testing.assert_array_equal(B.toarray(), expected)


def _saved(tmp_path):
    path = tmp_path / "b.npz"
    random_butterfly(16, random_state=0).save(path)
    return path


def _rewrite(path, **changes):
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    arrays.update(changes)
    for key in [k for k, v in changes.items() if v is None]:
        del arrays[key]
    np.savez(path, **arrays)


class _Payload:
    executed = False

    def __reduce__(self):
        return (_mark_executed, ())


def _mark_executed():
    _Payload.executed = True
    return 0


def test_load_refuses_truncated_file(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="cannot load"):
        load(path)


def test_load_refuses_corrupted_file(tmp_path):
    path = _saved(tmp_path)
    data = bytearray(path.read_bytes())
    # Flip bytes inside the stored arrays (past the first local header).
    for i in range(200, len(data) - 200, 7):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="cannot load"):
        load(path)


def test_load_refuses_non_npz_and_npy_files(tmp_path):
    text = tmp_path / "b.npz"
    text.write_text("not an archive")
    with pytest.raises(ValueError, match="cannot load"):
        load(text)
    npy = tmp_path / "b.npy"
    np.save(npy, np.ones(3))
    with pytest.raises(ValueError, match=r"not an \.npz archive"):
        load(npy)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load(tmp_path / "missing.npz")


def test_load_refuses_missing_format_and_newer_version(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, format=None)
    with pytest.raises(ValueError, match="format field"):
        load(path)
    path = _saved(tmp_path)
    _rewrite(path, version=np.array(io_module.FILE_VERSION + 1))
    with pytest.raises(ValueError, match="newer than the supported version"):
        load(path)
    path = _saved(tmp_path)
    _rewrite(path, factor_1=None)
    with pytest.raises(ValueError, match="incomplete file"):
        load(path)
    path = _saved(tmp_path)
    _rewrite(path, factor_1=np.ones((1, 1, 1, 1)))
    with pytest.raises(ValueError, match="inconsistent content"):
        load(path)


def test_load_never_unpickles(tmp_path):
    path = _saved(tmp_path)
    payload = np.empty(1, dtype=object)
    payload[0] = _Payload()
    _rewrite(path, perm=payload)
    with zipfile.ZipFile(path) as archive:
        assert "perm.npy" in archive.namelist()
    with pytest.raises(ValueError, match="cannot load"):
        load(path)
    assert not _Payload.executed


def test_failing_save_leaves_no_partial_file(tmp_path, monkeypatch):
    B = random_butterfly(16, random_state=0)
    path = tmp_path / "b.npz"
    path.write_bytes(b"previous content")

    def broken_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        B.save(path)
    assert path.read_bytes() == b"previous content"
    assert os.listdir(tmp_path) == ["b.npz"]
    monkeypatch.undo()
    B.save(tmp_path / "new.npz")
    assert sorted(os.listdir(tmp_path)) == ["b.npz", "new.npz"]


def test_scipy_solvers_and_composition_work():
    N = 16
    B = ButterflyMatrix([K / np.sqrt(2) for K in hadamard_factors(N)])  # orthogonal
    b = np.arange(N, dtype=float)
    x = scipy.sparse.linalg.lsqr(B, b, atol=1e-14, btol=1e-14)[0]
    np.testing.assert_allclose(x, B.toarray().T @ b, atol=1e-10)
    C = random_butterfly(N, random_state=0)
    np.testing.assert_allclose((C @ B) @ b, C.toarray() @ (B.toarray() @ b), atol=1e-10)
    np.testing.assert_allclose((C.H @ C).matvec(b), C.toarray().T @ (C @ b), atol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.complex64, np.complex128])
def test_astype_casts_every_factor_and_keeps_the_structure(dtype):
    B = random_butterfly(16, random_state=0)
    perm = np.random.default_rng(0).permutation(16)
    B = ButterflyMatrix(B.factors, perm=perm, shape=(13, 16))
    C = B.astype(dtype)
    assert C.dtype == dtype and B.dtype == np.float64
    assert all(K.dtype == dtype for K in C.factors)
    assert np.array_equal(C.perm, B.perm) and C.shape == B.shape
    x = np.random.default_rng(1).standard_normal(16)
    # Reference: the dense matrix of the original, cast.
    rtol = 1e-5 if np.dtype(dtype).itemsize <= 8 else 1e-12
    np.testing.assert_allclose(C @ x, B.toarray().astype(dtype) @ x, rtol=rtol)
    assert (C @ x).dtype == np.result_type(dtype, x.dtype)
    np.testing.assert_array_equal(B.todense(), B.toarray())
    assert type(B.todense()) is np.ndarray


def test_astype_refuses_losing_imaginary_parts_and_odd_dtypes():
    B = random_butterfly(8, random_state=0).astype(np.complex128)
    with pytest.raises(TypeError, match="imaginary"):
        B.astype(np.float64)
    for dtype in (np.int64, np.float16, bool):
        with pytest.raises(TypeError, match="dtype must be"):
            B.astype(dtype)


# ----------------------------------------------------------------------------
# Compact storage of quantized operators (file version 2)
# ----------------------------------------------------------------------------


def _bits(B):
    return [np.ascontiguousarray(K).view(np.uint8) for K in B.factors]


@pytest.mark.parametrize(
    "fmt, scale, encoding, ratio",
    [
        ("bfloat16", 1.0, "float16", 0.30),  # float16 holds these values too
        ("bfloat16", 2.0**60, "bfloat16", 0.30),  # beyond float16's range
        ("float16", 1.0, "float16", 0.30),
        ("float8_e4m3", 1.0, "float8_e4m3", 0.17),
        ("float8_e5m2", 1.0, "float8_e5m2", 0.17),
        (3, 1.0, "float8_e5m2", 0.17),  # unbounded t = 3, values in e5m2's range
        (8, 2.0**-60, "bfloat16", 0.30),
        (20, 1.0, "float32", 0.55),
    ],
    ids=str,
)
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
def test_quantized_file_is_compact_and_bit_exact(
    tmp_path, fmt, scale, encoding, ratio, complex_
):
    from skbutterfly import quantize_butterfly

    dtype = np.complex128 if complex_ else np.float64
    B = random_butterfly(256, dtype=dtype, random_state=0)
    B = ButterflyMatrix([B.factors[0] * scale, *B.factors[1:]])
    Q = quantize_butterfly(B, fmt, heuristic="rtn")
    assert Q.format is not None
    plain, compact = tmp_path / "plain.npz", tmp_path / "compact.npz"
    ButterflyMatrix(Q.factors, perm=Q.perm, shape=Q.shape).save(plain)
    Q.save(compact)
    assert os.path.getsize(compact) <= ratio * os.path.getsize(plain)
    with np.load(compact) as data:
        header = json.loads(data["header"].item())
        assert header["encoding"] == encoding
        assert header["value_format"]["t"] == Q.format.t
        assert data["values"].size == Q.nnz * (2 if complex_ else 1)
    loaded = load(compact)
    assert loaded.format == Q.format and loaded.dtype == Q.dtype
    for a, b in zip(_bits(loaded), _bits(Q)):
        np.testing.assert_array_equal(a, b)
    # The version 1 file (no format recorded) loads too, also bit for bit.
    old = load(plain)
    assert old.format is None
    for a, b in zip(_bits(old), _bits(Q)):
        np.testing.assert_array_equal(a, b)


def test_float8_codes_cover_every_finite_value(tmp_path):
    """Every finite float8 value (signed zeros, subnormals, the largest) survives."""
    from skbutterfly._formats import PRESETS, round_to_format

    for name, top in (("float8_e4m3", 448.0), ("float8_e5m2", 57344.0)):
        fmt = PRESETS[name]
        grid = np.unique(round_to_format(np.geomspace(1e-9, top, 4000), fmt))
        values = np.concatenate([grid, -grid, [0.0, -0.0]])
        values = np.resize(values, 2 * 4 * (values.size // 8 + 1))
        K = values.reshape(1, 2, -1, 1)[:, :, :4]
        B = ButterflyMatrix([K], format=fmt)
        B.save(tmp_path / "b.npz")
        loaded = load(tmp_path / "b.npz")
        np.testing.assert_array_equal(_bits(loaded)[0], _bits(B)[0])
        with np.load(tmp_path / "b.npz") as data:
            assert data["values"].dtype == np.uint8


def test_format_must_hold_the_values():
    K = np.full((1, 2, 2, 1), 1 + 2.0**-20)
    with pytest.raises(ValueError, match="not exactly representable in format"):
        ButterflyMatrix([K], format="bfloat16")
    assert ButterflyMatrix([K], format=24).format.t == 24


def test_copies_and_pickles_are_read_only_and_never_stale():
    import copy
    import pickle

    B = random_butterfly(16, random_state=0)
    rng = np.random.default_rng(0)
    perm, row_perm = rng.permutation(16), rng.permutation(16)
    B = ButterflyMatrix(B.factors, perm=perm, row_perm=row_perm)
    x = np.arange(16.0)
    B @ x, B @ np.ones((16, 3))  # build the cached product plans
    for C in (copy.deepcopy(B), copy.copy(B), pickle.loads(pickle.dumps(B))):
        np.testing.assert_array_equal(C.row_perm, B.row_perm)
        np.testing.assert_array_equal(C.perm, B.perm)
        for K in C.factors:
            assert not K.flags.writeable
            with pytest.raises(ValueError):
                K[...] = 0
        np.testing.assert_array_equal(C @ x, B @ x)
        assert C._plans is not B._plans


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_row_permutation_and_format_survive_save_and_load(tmp_path, quantized, dtype):
    from skbutterfly import quantize_butterfly

    rng = np.random.default_rng(0)
    B = random_butterfly(16, dtype=dtype, random_state=0)
    perm, row_perm = rng.permutation(16), rng.permutation(16)
    B = ButterflyMatrix(B.factors, perm=perm, row_perm=row_perm)
    if quantized:
        B = quantize_butterfly(B, "bfloat16", heuristic="rtn")
    path = tmp_path / "b.npz"
    B.save(path)
    C = load(path)
    with zipfile.ZipFile(path) as archive:
        version = int(np.load(archive.open("version.npy")))
    assert version == 2  # the row permutation needs the version 2 layout
    np.testing.assert_array_equal(C.row_perm, B.row_perm)
    np.testing.assert_array_equal(C.perm, B.perm)
    assert (C.format is None) == (not quantized)
    for K, L in zip(B.factors, C.factors):
        assert K.dtype == L.dtype and np.array_equal(K, L)
    np.testing.assert_array_equal(C.toarray(), B.toarray())
    # Without a row permutation nor a format, the version 1 layout is kept.
    ButterflyMatrix(B.factors, perm=B.perm).save(path)
    with zipfile.ZipFile(path) as archive:
        assert int(np.load(archive.open("version.npy"))) == 1
