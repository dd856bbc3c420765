"""Independent work in chunks, through scikit-learn's joblib ``Parallel``.

Layer 1 (kernels): the one place where parallelism is decided.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

from numbers import Integral

import numpy as np
from joblib import effective_n_jobs
from sklearn.utils.parallel import Parallel, delayed
from threadpoolctl import threadpool_limits

# Independent work in chunks (joblib)
# ----------------------------------------------------------------------------


def map_chunks(func, arrays, n_jobs=None, *, min_chunk=1):
    """Apply ``func`` to chunks of ``arrays`` along axis 0, concatenating results.

    With ``n_jobs`` resolving to one job (``None`` outside a
    ``joblib.parallel_config`` context), ``func`` runs once on the whole
    arrays. Otherwise the leading axis is cut into one chunk per job and the
    chunks run through scikit-learn's ``Parallel`` (so the joblib backend and
    configuration propagate, Dask included), with BLAS limited to one thread
    per worker. ``func`` returns an array or a tuple of arrays, each with the
    chunk's leading axis.
    """
    if n_jobs is not None and (
        isinstance(n_jobs, bool) or not isinstance(n_jobs, Integral)
    ):
        raise TypeError(f"n_jobs must be an integer or None, got {n_jobs!r}.")
    total = arrays[0].shape[0]
    jobs = effective_n_jobs(n_jobs)
    n_chunks = max(1, min(jobs, total // max(1, min_chunk)))
    if n_chunks == 1:
        return func(*arrays)
    bounds = np.linspace(0, total, n_chunks + 1).astype(int)
    with threadpool_limits(limits=1, user_api="blas"):
        parts = Parallel(n_jobs=n_jobs, prefer="threads")(
            delayed(func)(*(arr[lo:hi] for arr in arrays))
            for lo, hi in zip(bounds[:-1], bounds[1:])
        )
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p, axis=0) for p in zip(*parts))
    return np.concatenate(parts, axis=0)
