"""Orthogonal matching pursuit on a Gram matrix, vectorised over samples (kernel)."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import numpy as np
from sklearn.utils import gen_batches

# Samples coded together by the batched OMP (temporaries of
# _OMP_CHUNK * n_nonzero_coefs * n_components values), and the residual
# correlation, relative to the largest initial one, below which a sample is
# fully coded.
_OMP_CHUNK = 256
_OMP_TINY = 1e-12


def batch_omp(gram, cov, n_nonzero_coefs):
    """Orthogonal matching pursuit of many samples at once, on the Gram matrix.

    ``cov`` (n_atoms, n_samples) holds the correlations of the samples with
    the atoms. The steps of ``orthogonal_mp_gram`` run vectorised over
    samples (Rubinstein, Zibulevsky and Elad, 2008): select the atom of
    largest absolute residual correlation, solve the normal equations on the
    selected atoms, update the correlations through the Gram matrix. A
    sample whose residual correlations vanish stops early. Costs
    ``O(n_atoms * n_nonzero_coefs**2)`` per sample, where scikit-learn's
    per-sample loop also copies the Gram matrix for each sample.

    Parameters
    ----------
    gram : ndarray of shape (n_atoms, n_atoms)
        Gram matrix of the atoms (unit norm).
    cov : ndarray of shape (n_atoms, n_samples)
        Correlations of the samples with the atoms.
    n_nonzero_coefs : int
        Number of atoms selected per sample.

    Returns
    -------
    ndarray of shape (n_samples, n_atoms)
        The codes, the same as ``orthogonal_mp_gram(gram, cov, ...).T``.

    Examples
    --------
    >>> import numpy as np
    >>> from skbutterfly._batch_omp import batch_omp
    >>> X = np.array([[3.0, 0.0, -2.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    >>> batch_omp(np.eye(4), X.T, 2)
    array([[ 3.,  0., -2.,  0.],
           [ 0.,  1.,  0.,  0.]])
    """
    n_atoms, n_samples = cov.shape
    n_steps = min(n_nonzero_coefs, n_atoms)
    codes = np.zeros((n_samples, n_atoms), dtype=cov.dtype)
    for chunk in gen_batches(n_samples, _OMP_CHUNK):
        initial = np.ascontiguousarray(cov[:, chunk].T)
        block = codes[chunk]  # a view: written in place
        residual = initial.copy()
        rows = np.arange(len(initial))
        chosen = np.zeros((len(initial), n_steps), dtype=np.intp)
        active = np.ones(len(initial), dtype=bool)
        for t in range(n_steps):
            scores = np.abs(residual)
            scores[rows[:, None], chosen[:, :t]] = -1
            atom = np.argmax(scores, axis=1)
            active &= scores[rows, atom] > _OMP_TINY * np.abs(initial).max(axis=1)
            live = rows[active]
            if live.size == 0:
                break
            chosen[live, t] = atom[live]
            support = chosen[live, : t + 1]
            system = gram[support[:, :, None], support[:, None, :]]
            right = np.take_along_axis(initial[live], support, axis=1)
            coefs = np.linalg.solve(system, right[..., None])[..., 0]
            residual[live] = initial[live] - np.einsum(
                "stk,st->sk", gram[support], coefs
            )
            block[live[:, None], support] = coefs
    return codes
