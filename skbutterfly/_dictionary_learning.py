"""Dictionary learning with a butterfly dictionary: the online algorithm.

Layer 3 (algorithms). The estimator ``ButterflyDictionaryLearning`` is a thin
class over ``learn_online``: mini-batches are sparse-coded with the current
dictionary (correlations computed by the fast operator), the sufficient
statistics of the codes are accumulated, and the dictionary is updated by a
proximal least-squares step projected onto butterflies by
``butterfly_factorize``.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import time

import numpy as np
from sklearn.decomposition import sparse_encode
from sklearn.utils import gen_batches

from skbutterfly._batch_omp import batch_omp
from skbutterfly._hierarchical import butterfly_factorize
from skbutterfly._operator import ButterflyMatrix

# Sparse coders of sklearn.decomposition.sparse_encode that take the
# correlations ``cov`` precomputed (lasso_cd recomputes them densely).
TRANSFORM_ALGORITHMS = ("omp", "lasso_lars", "lars", "threshold")

# Below this many features (or when the operator stores more than a quarter
# of the dense values) one BLAS product ``D @ X.T`` is faster than the
# operator's one pass per factor: measured on one thread, the operator is
# 0.3x as fast at 64 features, 1.3x at 256 and 3.5x-5x at 1024.
_OPERATOR_MIN_FEATURES = 256
_OPERATOR_MAX_DENSITY = 0.25

# Weight of the proximal term of the dictionary step, relative to the mean
# squared norm of the codes (the mean diagonal of the code Gram matrix).
_PROXIMAL_WEIGHT = 0.1


# ----------------------------------------------------------------------------
# Pure functions on arrays
# ----------------------------------------------------------------------------


def _normalized(B):
    """``B`` with unit-norm rows (atoms), and its dense matrix.

    A row scaling of ``F_1 F_2 ... F_J`` is a row scaling of ``F_1``, whose
    rows are ``(a, b, d)`` in its values of shape ``(a, b, c, d)``: the
    result is a butterfly with the same supports. Zero rows stay zero.
    """
    D = B.toarray()
    norms = np.linalg.norm(D, axis=1)
    scale = np.ones(B.padded_shape[0], dtype=D.real.dtype)
    scale[: len(norms)] = 1 / np.where(norms > 0, norms, 1)
    K1 = B.factors[0]
    a, b, _, d = K1.shape
    K1 = K1 * scale.reshape(a, b, 1, d).astype(K1.dtype)
    B = ButterflyMatrix([K1, *B.factors[1:]], perm=B.perm, shape=B.shape)
    return B, D * scale[: len(norms), None].astype(D.dtype)


def _project(T, n_factors, rank, n_jobs):
    """Butterfly with unit-norm atoms near ``T`` (hierarchical projection)."""
    B = butterfly_factorize(T, n_factors=n_factors, rank=rank, n_jobs=n_jobs)
    return _normalized(B)


def _uses_operator(B):
    m, n = B.shape
    return n >= _OPERATOR_MIN_FEATURES and B.nnz <= _OPERATOR_MAX_DENSITY * m * n


def _correlations(B, D, X):
    """``D @ X.T``, of shape (n_components, n_samples), by the faster route."""
    if _uses_operator(B):
        return np.asarray(B.matmat(X.T))
    return D @ X.T


def encode(X, B, D, coder):
    """Sparse codes of the rows of ``X`` over the atoms ``D`` (rows of ``B``).

    ``coder`` holds the keyword arguments of ``sparse_encode``. The Gram
    matrix of the atoms and their correlations with the samples are
    computed first, the correlations by the fast operator; OMP with a number
    of nonzeros runs batched (``batch_omp``), the other coders in
    ``sparse_encode`` with both precomputed.
    """
    gram = np.asarray(B.matmat(D.T)) if _uses_operator(B) else D @ D.T
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


def learn_online(
    X, D, *, n_factors, rank, coder, max_iter, tol, batch_size, shuffle,
    random_state, n_jobs, verbose,
):  # fmt: skip
    """Online butterfly dictionary learning (the loop of ``fit``).

    Returns the operator, its dense matrix, the relative error of each epoch,
    the number of mini-batch steps and whether ``tol`` was met.
    """
    B, D = _project(D, n_factors, rank, n_jobs)
    n_samples, n_components = X.shape[0], D.shape[0]
    errors, n_steps, converged = [], 0, False
    start = time.perf_counter()
    for epoch in range(max_iter):
        code_gram = np.zeros((n_components, n_components), dtype=X.dtype)
        code_data = np.zeros_like(D)
        step = 0
        order = random_state.permutation(n_samples) if shuffle else np.arange(n_samples)
        residual, energy = 0.0, 0.0
        for batch in gen_batches(n_samples, batch_size):
            Xb = X[order[batch]]
            C = encode(Xb, B, D, coder)
            residual += float(np.linalg.norm(Xb - C @ D) ** 2)
            energy += float(np.linalg.norm(Xb) ** 2)
            beta = _forgetting_factor(step, batch_size)
            code_gram = beta * code_gram + (C.T @ C) / len(Xb)
            code_data = beta * code_data + (C.T @ Xb) / len(Xb)
            step += 1
            n_steps += 1
            T = _dictionary_step(D, code_gram, code_data)
            if T is not None:
                B, D = _project(T, n_factors, rank, n_jobs)
        errors.append(np.sqrt(residual / energy) if energy > 0 else 0.0)
        if verbose:
            print(
                f"[ButterflyDictionaryLearning] epoch {epoch + 1}/{max_iter}, "
                f"relative error {errors[-1]:.4f}, "
                f"{time.perf_counter() - start:.1f} s"
            )
        if tol > 0 and epoch > 0 and errors[-2] - errors[-1] < tol * errors[-2]:
            converged = True
            break
    return B, D, np.asarray(errors), n_steps, converged


# ----------------------------------------------------------------------------
# Estimator
# ----------------------------------------------------------------------------
