"""Dictionary learning with a butterfly dictionary: the online algorithm.

Layer 3 (algorithms). The estimator ``ButterflyDictionaryLearning`` is a thin
class over ``learn_online`` and ``online_step``: mini-batches are
sparse-coded with the current dictionary (correlations computed by the fast
operator), the sufficient statistics of the codes are accumulated, and the
dictionary is updated by a proximal least-squares step projected onto
butterflies by ``butterfly_factorize``. When an ordering is searched, the
first epochs run without the constraint and the ordering is chosen once on
the dictionary they learned.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import math
import time
from dataclasses import dataclass

import numpy as np
from sklearn.decomposition import sparse_encode
from sklearn.utils import gen_batches

from skbutterfly._batch_omp import batch_omp
from skbutterfly._hierarchical import butterfly_factorize
from skbutterfly._operator import ButterflyMatrix
from skbutterfly._orderings import SEARCHES
from skbutterfly._scaling import frobenius_norm, scale_pow2, scaling_exponent

# Sparse coders of sklearn.decomposition.sparse_encode. All but "lasso_cd"
# take the correlations ``cov`` precomputed (by the operator); scikit-learn's
# Lasso computes them itself, by one dense product.
TRANSFORM_ALGORITHMS = ("omp", "lasso_lars", "lasso_cd", "lars", "threshold")

# Below this many features (or when the operator stores more than a quarter
# of the dense values) one BLAS product ``D @ X.T`` is faster than the
# operator's one pass per factor: measured on one thread, the operator is
# 0.3x as fast at 64 features, 1.3x at 256 and 3.5x-5x at 1024.
_OPERATOR_MIN_FEATURES = 256
_OPERATOR_MAX_DENSITY = 0.25

# Weight of the proximal term of the dictionary step, relative to the mean
# squared norm of the codes (the mean diagonal of the code Gram matrix).
_PROXIMAL_WEIGHT = 0.1

# Standard deviation of the noise added to a sample that replaces an unused
# atom, relative to the sample's (as MiniBatchDictionaryLearning does).
_RESAMPLE_NOISE = 0.01


# ----------------------------------------------------------------------------
# Pure functions on arrays
# ----------------------------------------------------------------------------


def _unit_rows(D):
    """``D`` with unit-norm rows; zero rows stay zero."""
    norms = np.linalg.norm(D, axis=1, keepdims=True)
    return D / np.where(norms > 0, norms, 1).astype(D.dtype)


def _normalized(B):
    """``B`` with unit-norm rows (atoms), and its dense matrix.

    A row scaling of ``P_row^T F_1 F_2 ... F_J`` is a row scaling of
    ``F_1`` (output ``row_perm[i]`` is row ``i`` of ``F_1``), whose rows are
    ``(a, b, d)`` in its values of shape ``(a, b, c, d)``: the result is a
    butterfly with the same supports. Zero rows stay zero.
    """
    D = B.toarray()
    norms = np.linalg.norm(D, axis=1)
    scale = np.ones(B.padded_shape[0], dtype=D.real.dtype)
    scale[: len(norms)] = 1 / np.where(norms > 0, norms, 1)
    row_scale = scale if B.row_perm is None else scale[B.row_perm]
    K1 = B.factors[0]
    a, b, _, d = K1.shape
    K1 = K1 * row_scale.reshape(a, b, 1, d).astype(K1.dtype)
    B = ButterflyMatrix(
        [K1, *B.factors[1:]], perm=B.perm, row_perm=B.row_perm, shape=B.shape
    )
    return B, D * scale[: len(norms), None].astype(D.dtype)


def is_searched(spec) -> bool:
    """Whether an ordering spec is chosen by a search (not one permutation)."""
    if isinstance(spec, str):
        return spec in SEARCHES or spec in ("default-8", "default_8")
    return isinstance(spec, (list, tuple)) and any(
        isinstance(item, (str, list, tuple, np.ndarray)) or item is None
        for item in spec
    )


@dataclass
class Architecture:
    """The butterfly set of the dictionary: depth, rank and orderings.

    ``permutation`` and ``row_permutation`` are what
    :func:`butterfly_factorize` accepts; after :meth:`project` has searched
    them once, they hold the permutations found, kept from then on.
    """

    n_factors: int | None
    rank: int
    permutation: object
    row_permutation: object
    n_jobs: int | None
    random_state: object = None

    @property
    def searched(self):
        return is_searched(self.permutation) or is_searched(self.row_permutation)

    def project(self, T):
        """Butterfly with unit-norm atoms near ``T``, and its dense matrix."""
        B = butterfly_factorize(
            T,
            n_factors=self.n_factors,
            rank=self.rank,
            permutation=self.permutation,
            row_permutation=self.row_permutation,
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        self.permutation, self.row_permutation = B.perm, B.row_perm
        return _normalized(B)


def _uses_operator(B):
    if B is None:
        return False
    m, n = B.shape
    return n >= _OPERATOR_MIN_FEATURES and B.nnz <= _OPERATOR_MAX_DENSITY * m * n


def _correlations(B, D, X):
    """``D @ X.T``, of shape (n_components, n_samples), by the faster route."""
    if _uses_operator(B):
        return np.asarray(B.matmat(X.T))
    return D @ X.T


def _encode(X, B, D, coder):
    gram = np.asarray(B.matmat(D.T)) if _uses_operator(B) else D @ D.T
    if coder["algorithm"] == "lasso_cd":
        return sparse_encode(X, D, gram=gram, check_input=False, **coder)
    cov = _correlations(B, D, X)
    if coder["algorithm"] == "omp" and coder["alpha"] is None:
        n_nonzero = coder["n_nonzero_coefs"]
        if n_nonzero is None:  # sparse_encode's default
            n_nonzero = int(min(max(X.shape[1] / 10, 1), D.shape[0]))
        if n_nonzero > D.shape[0]:
            raise ValueError(
                f"transform_n_nonzero_coefs={n_nonzero} must be at most "
                f"n_components={D.shape[0]}."
            )
        return batch_omp(gram, cov, n_nonzero)
    return sparse_encode(X, D, gram=gram, cov=cov, check_input=False, **coder)


def encode(X, B, D, coder):
    """Sparse codes of the rows of ``X`` over the atoms ``D`` (rows of ``B``).

    ``coder`` holds the keyword arguments of ``sparse_encode``; ``B`` may be
    ``None`` (a dense dictionary). The Gram matrix of the atoms and their
    correlations with the samples are computed first, the correlations by
    the fast operator; OMP with a number of nonzeros runs batched
    (``batch_omp``), the other coders in ``sparse_encode`` with both
    precomputed (``"lasso_cd"`` with the Gram matrix only). Samples of
    extreme magnitude are coded at a power-of-two scale near one (exact),
    ``alpha`` scaled alike: the codes are those of the unscaled problem.
    """
    exponent = scaling_exponent(X)
    if exponent == 0:
        return _encode(X, B, D, coder)
    alpha = coder["alpha"]
    if alpha is not None:  # OMP's alpha bounds a squared norm
        power = 2 if coder["algorithm"] == "omp" else 1
        alpha = math.ldexp(alpha, -power * exponent)
    codes = _encode(scale_pow2(X, -exponent), B, D, {**coder, "alpha": alpha})
    return scale_pow2(codes, exponent)


def initial_dictionary(X, n_components, random_state):
    """Principal directions of ``X`` (completed at random), one per row.

    The eigenvectors of ``X.T @ X`` form a complete orthonormal basis even
    when there are fewer samples than features; more atoms than features are
    filled with Gaussian rows.
    """
    n_features = X.shape[1]
    _, V = np.linalg.eigh(X.T @ X)
    D = V[:, ::-1].T[:n_components]
    if n_components > n_features:
        extra = random_state.standard_normal((n_components - n_features, n_features))
        D = np.concatenate([D, extra.astype(X.dtype)])
    return D


def _forgetting_factor(step, batch_size):
    """Weight of the past statistics at ``step`` (Mairal et al. 2010, §3.4.3)."""
    if step < batch_size - 1:
        theta = (step + 1) * batch_size
    else:
        theta = batch_size**2 + step + 1 - batch_size
    return (theta + 1 - batch_size) / (theta + 1)


def _dictionary_step(D, code_gram, code_data):
    """Proximal least-squares step on the surrogate, before projection.

    Minimises ``0.5 tr(Z^T A Z) - tr(Z^T B) + 0.5 lam ||Z - D||^2`` with
    ``A = code_gram`` and ``B = code_data``: ``Z = (A + lam I)^-1 (B + lam D)``.
    Atoms that no code uses keep their value. Returns ``None`` when no code
    is nonzero yet.
    """
    lam = _PROXIMAL_WEIGHT * np.trace(code_gram) / len(code_gram)
    if lam <= 0:
        return None
    system = code_gram + lam * np.eye(len(code_gram), dtype=code_gram.dtype)
    return np.linalg.solve(system, code_data + lam * D)


@dataclass
class OnlineState:
    """What the online algorithm carries from one mini-batch to the next.

    ``B`` is ``None`` while the dictionary is free (not yet a butterfly).
    """

    B: ButterflyMatrix | None
    D: np.ndarray
    code_gram: np.ndarray
    code_data: np.ndarray
    step: int = 0

    @classmethod
    def start(cls, B, D):
        k = D.shape[0]
        return cls(B, D, np.zeros((k, k), dtype=D.dtype), np.zeros_like(D))


def online_step(state, Xb, arch, coder, batch_size, random_state, resample):
    """One mini-batch of the online algorithm; returns ``(codes, n_unused)``.

    Codes ``Xb`` with the current dictionary, accumulates the statistics,
    takes the dictionary step and projects it (unless the dictionary is
    free). With ``resample``, atoms no code has used since the statistics
    were reset are replaced by random samples of ``Xb`` with 1 % noise,
    normalised (the projection weighs rows by their norms).
    """
    C = encode(Xb, state.B, state.D, coder)
    beta = _forgetting_factor(state.step, batch_size)
    state.code_gram = beta * state.code_gram + (C.T @ C) / len(Xb)
    state.code_data = beta * state.code_data + (C.T @ Xb) / len(Xb)
    state.step += 1
    T = _dictionary_step(state.D, state.code_gram, state.code_data)
    if T is None:
        return C, 0
    unused = np.flatnonzero(np.diag(state.code_gram) <= 0) if resample else []
    if len(unused):
        samples = Xb[random_state.randint(len(Xb), size=len(unused))]
        noise = random_state.standard_normal(samples.shape).astype(Xb.dtype)
        spread = np.std(samples, axis=1, keepdims=True)
        samples = samples + _RESAMPLE_NOISE * np.where(spread > 0, spread, 1) * noise
        T[unused] = _unit_rows(samples)  # atoms' scale: the fit is scale-free
    if state.B is None:
        state.D = _unit_rows(T)
    else:
        state.B, state.D = arch.project(T)
    return C, len(unused)


def free_epochs(arch, max_iter):
    """Epochs run without the constraint (half, rounded down, if searching).

    Without a searched ordering every epoch is constrained; with one, the
    last epoch always is.
    """
    return max_iter // 2 if arch.searched else 0


def learn_online(
    X, D, *, arch, coder, max_iter, tol, batch_size, shuffle, random_state, verbose,
):  # fmt: skip
    """Online butterfly dictionary learning (the loop of ``fit``).

    ``X`` must be scaled near one (``scaling_exponent(X) == 0``). Returns the
    final state, the relative error of each epoch, the number of mini-batch
    steps and whether ``tol`` was met (in the constrained epochs).
    """
    n_free = free_epochs(arch, max_iter)
    if n_free:
        state = OnlineState.start(None, _unit_rows(D))
    else:
        state = OnlineState.start(*arch.project(D))
    n_samples = X.shape[0]
    errors, n_steps, converged = [], 0, False
    start = time.perf_counter()
    for epoch in range(max_iter):
        if epoch == n_free and state.B is None:
            state = OnlineState.start(*arch.project(state.D))
        else:
            state = OnlineState.start(state.B, state.D)
        order = random_state.permutation(n_samples) if shuffle else np.arange(n_samples)
        residual, energy, n_unused = 0.0, 0.0, 0
        batches = list(gen_batches(n_samples, batch_size))
        for i, batch in enumerate(batches):
            Xb = X[order[batch]]
            D = state.D
            C, unused = online_step(
                state, Xb, arch, coder, batch_size, random_state,
                resample=i == len(batches) - 1,
            )  # fmt: skip
            n_unused += unused
            residual += frobenius_norm(Xb - C @ D) ** 2
            energy += frobenius_norm(Xb) ** 2
            n_steps += 1
        errors.append(math.sqrt(residual / energy) if energy > 0 else 0.0)
        if verbose:
            phase = "free" if state.B is None else "butterfly"
            print(
                f"[ButterflyDictionaryLearning] epoch {epoch + 1}/{max_iter} "
                f"({phase}), relative error {errors[-1]:.4f}, {n_unused} unused "
                f"atoms resampled, {time.perf_counter() - start:.1f} s"
            )
        if tol > 0 and epoch > n_free and errors[-2] - errors[-1] < tol * errors[-2]:
            converged = True
            break
    return state, np.asarray(errors), n_steps, converged
