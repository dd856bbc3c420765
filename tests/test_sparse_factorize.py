"""sparse_factorize, SparseProduct: exact recovery, monotone PALM, exact step."""

import os

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skbutterfly import (
    SparseProduct,
    SparsityConstraint,
    butterfly_factorize,
    butterfly_support,
    fixed_support_factorize,
    load,
    sparse_factorize,
)
from skbutterfly.datasets import hadamard


def _random_sparse(rng, n, k):
    """A sum of k random permutation matrices with Gaussian values."""
    S = np.zeros((n, n))
    for _ in range(k):
        S[np.arange(n), rng.permutation(n)] += rng.standard_normal(n)
    return S


def _counts(P):
    nz = [F.toarray() != 0 for F in P.factors]
    return [(m.sum(1).max(), m.sum(0).max()) for m in nz]


@pytest.mark.parametrize("N", [16, 32, 64])
def test_hierarchical_recovers_hadamard_with_two_per_row_and_column(N):
    L = int(np.log2(N))
    P, info = sparse_factorize(hadamard(N), [("rowcol_and", 2)] * L)
    assert P.n_factors == L
    assert info.relative_error <= 1e-10
    assert np.linalg.norm(P.toarray() - hadamard(N)) <= 1e-10 * N
    assert all(c == (2, 2) for c in _counts(P))
    assert P.nnz == 2 * N * L


def test_hierarchical_recovers_hadamard_with_pyfaust_splincol():
    N = 32
    P, info = sparse_factorize(hadamard(N), [("splincol", 2)] * 5)
    assert info.relative_error <= 1e-10
    # The union rule may keep a few more than 2 entries per row or column.
    assert P.nnz <= 3 * N * 5


def test_recovers_a_product_of_given_supports():
    # A random butterfly of size 8: the supports are given, the values not.
    rng = np.random.default_rng(3)
    masks = [butterfly_support(8, k) for k in (1, 2, 3)]
    A = np.linalg.multi_dot(
        [np.where(S, rng.standard_normal(S.shape), 0) for S in masks]
    )
    P, info = sparse_factorize(A, masks, max_iter=500)
    assert info.relative_error <= 1e-8
    for F, S in zip(P.factors, masks):
        assert not (F.toarray()[~S]).any()


@pytest.mark.parametrize(
    "constraints",
    [
        [("row", 3), ("col", 3)],
        [("total", 40, False), ("rowcol", 2, False), ("row", 4)],
        [("rowcol", 2), ("rowcol", 2), ("rowcol", 3)],
        [("rowcol_and", 3), ("total", 60)],
    ],
    ids=["row-col", "mixed-unnormalized", "rowcol", "and-total"],
)
@pytest.mark.parametrize("init", ["identity", "random"])
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_palm_objective_never_increases(constraints, init):
    rng = np.random.default_rng(0)
    A = rng.standard_normal((12, 12))
    P, info = sparse_factorize(
        A, constraints, strategy="palm", init=init, max_iter=60, random_state=1
    )
    objective = info.objective
    assert len(objective) > 2
    assert np.all(np.diff(objective) <= 1e-15 * objective[:-1])
    assert objective[-1] < objective[0]
    # The reported error is the error of the returned product.
    assert info.relative_error == pytest.approx(
        np.linalg.norm(A - P.toarray()) / np.linalg.norm(A), rel=1e-9
    )
    assert info.palm_relative_error == pytest.approx(objective[-1], rel=1e-9)
    if any(len(c) == 2 or c[2] for c in constraints):
        # A normalized family: the scale is refit with every block step, so
        # the returned one is the best for the returned factors.
        unit = P.toarray() / info.scale
        best = np.vdot(unit, A).real / np.vdot(unit, unit).real
        assert info.scale == pytest.approx(best, rel=1e-9)


def test_factors_are_in_their_families():
    rng = np.random.default_rng(1)
    A = rng.standard_normal((10, 14))
    cons = [("row", 2), ("col", 3), ("total", 30)]
    with pytest.warns(ConvergenceWarning):
        P, _ = sparse_factorize(A, cons, strategy="palm", max_iter=5, inner_dims=(8, 9))
    F1, F2, F3 = (F.toarray() != 0 for F in P.factors)
    assert [F.shape for F in P.factors] == [(10, 8), (8, 9), (9, 14)]
    assert F1.sum(1).max() <= 2 and F2.sum(0).max() <= 3 and F3.sum() <= 30


def test_convergence_warning_at_max_iter_and_none_when_converged():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((16, 16))
    with pytest.warns(ConvergenceWarning, match="max_iter=3"):
        _, info = sparse_factorize(A, [("row", 4), ("row", 4)], max_iter=3)
    assert not info.converged
    with warnings_as_errors():
        _, info = sparse_factorize(hadamard(8), [("rowcol_and", 2)] * 3)
    assert info.converged


class warnings_as_errors:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", ConvergenceWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_two_factor_exact_step_is_certified_and_never_worse():
    # W with one nonzero per row (a clustering of the rows of A): the rank-one
    # supports of W H are disjoint, hence tractable, whatever PALM found.
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 4, size=30)
    W0 = np.zeros((30, 4))
    W0[np.arange(30), labels] = rng.uniform(1, 2, size=30)
    A = W0 @ rng.standard_normal((4, 12)) + 0.1 * rng.standard_normal((30, 12))
    P, info = sparse_factorize(
        A,
        [("row", 1), ("total", 48)],
        strategy="palm",
        inner_dims=(4,),
        init="random",
        random_state=0,
        max_iter=500,
    )
    assert info.analysis is not None and info.analysis.tractable
    assert info.certified_optimal
    assert info.exact_relative_error <= info.palm_relative_error + 1e-12
    assert info.relative_error == pytest.approx(info.exact_relative_error)
    assert [name for name, _ in info.steps][-1] == "exact"
    # Independent check: the optimal value on the found supports.
    W, H = (F.toarray() for F in P.factors)
    _, _, ref = fixed_support_factorize(A, W != 0, H != 0, method="exact")
    assert info.error == pytest.approx(ref.optimal_error, rel=1e-8)
    # Stopped early, PALM's coefficients are visibly improved by the exact step.
    with pytest.warns(ConvergenceWarning):
        _, short = sparse_factorize(
            A,
            [("row", 1), ("total", 48)],
            strategy="palm",
            inner_dims=(4,),
            init="random",
            random_state=0,
            max_iter=1,
        )
    assert short.certified_optimal
    assert short.exact_relative_error < 0.9 * short.palm_relative_error


def _scaled_permutation(rng, n):
    return np.diag(rng.uniform(0.5, 2, n))[rng.permutation(n)]


def _pair_stationarity(A, factors, pair):
    """Largest gradient of the error in the pair, on its supports, relative."""
    dense = [F.toarray() for F in factors]
    E = np.linalg.multi_dot(dense) - A
    worst = 0.0
    for j in pair:
        left, right = np.eye(A.shape[0]), np.eye(dense[j].shape[1])
        for F in dense[:j]:
            left = left @ F
        for F in dense[j + 1 :]:
            right = right @ F
        grad = left.T @ E @ right.T
        size = np.linalg.norm(left, 2) * np.linalg.norm(right, 2)
        scale = size * max(np.linalg.norm(E), 1e-12 * np.linalg.norm(A))
        worst = max(worst, np.abs(grad[dense[j] != 0]).max() / scale)
    return worst


@pytest.mark.parametrize("side", ["left", "right"])
def test_exact_pair_step_for_three_factors(side):
    # One factor with orthogonal columns (rows): a scaled permutation of
    # fixed support. The other two: W with one nonzero per row and H full,
    # tractable (or the transposed roles on the right). After 3 PALM sweeps
    # the exact step solves the pair.
    rng = np.random.default_rng(12)
    n, r = 12, 3
    W0 = np.zeros((n, r))
    W0[np.arange(n), rng.integers(0, r, n)] = rng.uniform(1, 2, n)
    H0 = rng.standard_normal((r, n))
    Q0 = _scaled_permutation(rng, n)
    if side == "left":
        chain, cons = [Q0, W0, H0], [Q0 != 0, W0 != 0, ("total", r * n)]
        dims, pair = (n, r), (1, 2)
    else:
        # W full (no orthogonal columns), H with one nonzero per column.
        W1, H1 = H0.T, W0.T
        chain, cons = [W1, H1, Q0], [("total", r * n), H1 != 0, Q0 != 0]
        dims, pair = (r, n), (0, 1)
    exact = np.linalg.multi_dot(chain)

    def three_sweeps(A, exact_coefficients=True):
        with pytest.warns(ConvergenceWarning):
            return sparse_factorize(
                A,
                cons,
                strategy="palm",
                inner_dims=dims,
                init="random",
                random_state=0,
                max_iter=3,
                exact_coefficients=exact_coefficients,
            )

    for noise in (0.0, 0.1):
        A = exact + noise * rng.standard_normal(exact.shape)
        P, info = three_sweeps(A)
        assert info.exact_factors == pair
        assert [name for name, _ in info.steps][-1] == "exact"
        assert not info.certified_optimal and info.analysis.tractable
        assert info.relative_error <= info.palm_relative_error
        assert info.relative_error == pytest.approx(info.exact_relative_error)
        if noise:
            assert _pair_stationarity(A, P.factors, pair) <= 1e-9
            # Without the exact step, the pair is visibly not stationary.
            Q, _ = three_sweeps(A, exact_coefficients=False)
            assert _pair_stationarity(A, Q.factors, pair) > 1e-3
        else:
            assert info.palm_relative_error > 1e-3 and info.relative_error < 1e-12


def test_exact_step_can_be_disabled_and_is_skipped_on_intractable_supports():
    rng = np.random.default_rng(5)
    A = rng.standard_normal((8, 8))
    with pytest.warns(ConvergenceWarning):
        _, info = sparse_factorize(
            A, [("total", 20), ("total", 20)], max_iter=5, exact_coefficients=False
        )
    assert info.exact_relative_error is None and info.analysis is None
    with pytest.warns(ConvergenceWarning):
        _, info = sparse_factorize(A, [("total", 30), ("total", 30)], max_iter=5)
    if not info.analysis.tractable:
        assert not info.certified_optimal and info.exact_relative_error is None


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_random_sparse_product_no_worse_than_pyfaust_reference():
    # pyfaust 3.41's hierarchical stops at 0.29-0.32 relative error on such
    # products (128 x 128, 3 factors, 4 nonzeros per row and column); here a
    # smaller instance of the same kind, at no more nonzeros than the
    # constraints allow.
    rng = np.random.default_rng(0)
    n, k = 64, 4
    A = (
        _random_sparse(rng, n, k)
        @ _random_sparse(rng, n, k)
        @ _random_sparse(rng, n, k)
    )
    P, info = sparse_factorize(A, [("rowcol", k)] * 3, max_iter=60)
    assert info.relative_error <= 0.35
    # A butterfly of similar storage is far worse on this matrix.
    B = butterfly_factorize(A, n_factors=3)
    butterfly_error = np.linalg.norm(A - B.toarray()) / np.linalg.norm(A)
    assert info.relative_error < butterfly_error


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_warm_start_from_a_butterfly_never_loses_its_accuracy():
    rng = np.random.default_rng(6)
    A = rng.standard_normal((16, 16))
    B = butterfly_factorize(A, n_factors=4, permutation="bit-reversal")
    start = np.linalg.norm(A - B.toarray()) / np.linalg.norm(A)
    mats = B.factors_sparse()
    masks = [F.toarray() != 0 for F in [*mats[:3], mats[3] @ mats[4]]]
    P, info = sparse_factorize(
        A, masks, strategy="palm", init=B, max_iter=20, exact_coefficients=False
    )
    # The start is the butterfly (up to the fitted scalar, which only helps).
    assert info.objective[0] == pytest.approx(start, rel=1e-3)
    assert info.objective[0] <= start + 1e-12
    assert info.relative_error <= start + 1e-12


def test_float32_and_complex_are_kept():
    rng = np.random.default_rng(7)
    A = rng.standard_normal((8, 8)).astype(np.float32)
    with pytest.warns(ConvergenceWarning):
        P, _ = sparse_factorize(A, [("row", 2), ("row", 2)], max_iter=3)
    assert P.dtype == np.float32
    C = rng.standard_normal((8, 8)) + 1j * rng.standard_normal((8, 8))
    with pytest.warns(ConvergenceWarning):
        P, info = sparse_factorize(C, [("row", 4), ("row", 4)], max_iter=20)
    assert np.iscomplexobj(P.toarray())
    assert info.relative_error < 1


def test_verbose_prints_each_step(capsys):
    sparse_factorize(hadamard(8), [("rowcol_and", 2)] * 3, verbose=1)
    out = capsys.readouterr().out
    assert "split 1" in out and "global 2" in out


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"constraints": [("row", 0), ("row", 2)]}, "k"),
        ({"constraints": [("row", 9), ("row", 2)]}, "constraints\\[0\\].*k=9"),
        ({"constraints": [("diag", 2), ("row", 2)]}, "name"),
        ({"constraints": "row"}, "list"),
        ({"constraints": []}, "at least one"),
        ({"constraints": [np.ones((8, 5)), np.ones((4, 8))]}, "shape"),
        ({"constraints": [("row", 2)] * 2, "inner_dims": (3, 4)}, "inner_dims"),
        ({"constraints": [("row", 2)] * 2, "strategy": "greedy"}, "strategy"),
        ({"constraints": [("row", 2)] * 2, "max_iter": 0}, "max_iter"),
        ({"constraints": [("row", 2)] * 2, "tol": -1.0}, "tol"),
        ({"constraints": [("row", 2)] * 2, "init": "zeros"}, "init"),
        ({"constraints": [("row", 2)] * 2, "init": [np.eye(8)] * 3}, "init"),
        (
            {"constraints": [("row", 2)] * 3, "residual_constraints": []},
            "residual_constraints",
        ),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sparse_factorize(np.ones((8, 8)), **kwargs)


def test_bad_matrix_raises():
    with pytest.raises(ValueError, match="NaN"):
        sparse_factorize(np.full((2, 2), np.nan), [("row", 1)])


# ----------------------------------------------------------------------------
# SparseProduct
# ----------------------------------------------------------------------------


def _product(rng):
    return SparseProduct(
        [
            np.where(rng.random((5, 4)) < 0.5, rng.standard_normal((5, 4)), 0),
            np.where(rng.random((4, 6)) < 0.5, rng.standard_normal((4, 6)), 0),
        ]
    )


def test_sparse_product_operator_algebra():
    rng = np.random.default_rng(8)
    P = _product(rng)
    dense = P.factors[0].toarray() @ P.factors[1].toarray()
    np.testing.assert_allclose(P.toarray(), dense)
    x, X = rng.standard_normal(6), rng.standard_normal((6, 3))
    np.testing.assert_allclose(P @ x, dense @ x)
    np.testing.assert_allclose(P @ X, dense @ X)
    y = rng.standard_normal(5)
    np.testing.assert_allclose(P.H @ y, dense.T @ y)
    np.testing.assert_allclose(P.T.toarray(), dense.T)
    assert P.nnz == sum(int((F.toarray() != 0).sum()) for F in P.factors)
    assert P.flops == 2 * P.nnz
    assert P.shape == (5, 6) and "SparseProduct" in repr(P)


def test_sparse_product_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(9)
    P = _product(rng)
    path = tmp_path / "p.npz"
    P.save(path)
    Q = SparseProduct.load(path)
    np.testing.assert_array_equal(Q.toarray(), P.toarray())
    assert Q.nnz == P.nnz
    np.savez(tmp_path / "other.npz", x=np.ones(2))
    with pytest.raises(ValueError, match="not a"):
        SparseProduct.load(tmp_path / "other.npz")
    assert sorted(os.listdir(tmp_path)) == ["other.npz", "p.npz"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.complex128])
def test_the_package_load_reads_sparse_products_bit_for_bit(tmp_path, dtype):
    rng = np.random.default_rng(10)
    P = SparseProduct(
        [
            F.astype(dtype) * (1 + 1j if dtype == np.complex128 else 1)
            for F in _product(rng).factors
        ]
    )
    path = tmp_path / "p.npz"
    P.save(path)
    Q = load(path)
    assert isinstance(Q, SparseProduct) and Q.dtype == P.dtype
    for F, G in zip(P.factors, Q.factors):
        assert F.shape == G.shape and F.dtype == G.dtype
        np.testing.assert_array_equal(F.toarray(), G.toarray())
    x = rng.standard_normal(P.shape[1])
    np.testing.assert_array_equal(Q @ x, P @ x)


def test_damaged_sparse_product_files_raise_value_errors_naming_the_path(tmp_path):
    P = _product(np.random.default_rng(11))
    path = tmp_path / "p.npz"
    P.save(path)
    with np.load(path) as data:
        members = dict(data)
    cases = {
        "missing": {k: v for k, v in members.items() if k != "indptr_1"},
        "extra": {**members, "surprise": np.ones(2)},
        "corrupt": {**members, "indices_0": members["indices_0"] + 1000},
        "version": {**members, "version": np.array(99)},
    }
    for name, arrays in cases.items():
        bad = tmp_path / f"{name}.npz"
        np.savez(bad, **arrays)
        with pytest.raises(ValueError, match=f"cannot load .*{name}.npz"):
            load(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"junk\.npz"):
        load(tmp_path / "junk.npz")


def test_sparse_product_rejects_unchainable_factors():
    with pytest.raises(ValueError, match="chainable"):
        SparseProduct([np.ones((2, 3)), np.ones((2, 2))])
    with pytest.raises(ValueError, match="at least one"):
        SparseProduct([])


def test_constraint_objects_and_masks_are_accepted():
    A = hadamard(8)
    cons = [SparsityConstraint("rowcol_and", 2)] * 3
    P, info = sparse_factorize(A, cons)
    assert info.relative_error <= 1e-10


def test_a_start_given_to_the_hierarchical_strategy_warns():
    with pytest.warns(UserWarning, match="strategy='palm' only"):
        sparse_factorize(hadamard(8), [("rowcol_and", 2)] * 3, init="random")
