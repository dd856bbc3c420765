"""Out-of-core input: the root split's blocks read slab by slab.

Layer 1 (kernels). The root target of the butterfly factorization is
``T = A_padded[:, perm]`` (pattern ``(1, M, N, 1)``). For the root pair of
patterns, its block ``(x, g)`` (``x < delta``, ``g < alpha``) has the
strided rows ``i * delta + x`` (``i < b1``) and the contiguous columns
``g * c2 .. (g + 1) * c2`` of ``T``: a slab of whole column groups of ``T``
therefore holds whole blocks, and the blocks are independent. A matrix that
does not fit in memory (a :class:`numpy.memmap`, any array readable by
slices such as an ``h5py`` or ``zarr`` dataset, or a lazy
``dask.array.Array``) is read one slab at a time, each slab's work runs on
its blocks only, and only its small results are kept. Padding and the
permutation are applied to indices; the matrix is never copied whole.
"""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import functools
import mmap
import sys
from dataclasses import dataclass, field
from functools import partial
from numbers import Real

import numpy as np
import scipy.sparse as sp
from sklearn import get_config

from skbutterfly._ks import class_blocks, fuse_values, merge_blocks, pair_dims
from skbutterfly._scaling import (
    exponent_if_extreme,
    ldexp_or_inf,
    peak_exponent,
    scale_pow2,
    scaling_exponent,
)
from skbutterfly._split import split_factors
from skbutterfly._validation import check_matrix, is_dask_array

# Arrays of a slab's size alive at once while it is processed: the columns
# read, its blocks, and the temporaries of the block SVDs (or of a Dask
# task's assembling of the columns read).
_SLAB_COPIES = 3


@dataclass
class SlabSource:
    """A matrix read by column slabs instead of held in memory.

    Everything computed from the slabs is for :math:`2^{-e} A`, with ``e``
    the ``exponent`` (0 unless the magnitudes of ``A`` are extreme, see
    :func:`~skbutterfly._scaling.scaling_exponent`), and ``sq_norm`` is
    :math:`\\|2^{-e} A\\|_F^2`: both are filled in by the first pass over
    the matrix (:func:`root_split_slabs`) or by :meth:`toarray`.
    """

    data: object
    name: str
    shape: tuple
    dtype: np.dtype
    sq_norm: float | None = field(default=None)
    exponent: int = 0

    def toarray(self) -> np.ndarray:
        """The whole matrix in memory, scaled by ``2**-exponent``.

        For a one-factor butterfly, whose factor is the matrix itself.
        """
        data = self.data.compute() if is_dask_array(self.data) else self.data
        A = check_matrix(np.asarray(data), name=self.name)
        self.exponent = scaling_exponent(A)
        A = scale_pow2(A, -self.exponent)
        self.sq_norm = float(np.vdot(A, A).real)
        return A


def _is_sliceable(A):
    return (
        hasattr(A, "shape")
        and hasattr(A, "dtype")
        and hasattr(A, "__getitem__")
        and (not isinstance(A, np.ndarray) or isinstance(A, np.memmap))
        and not sp.issparse(A)
        and not hasattr(A, "toarray")
    )


def refuse_out_of_core(A, *, name, solver):
    """``ValueError`` if ``A`` is a Dask array or a slice-readable dataset.

    For the solvers that need their matrix in memory (all but the butterfly
    factorization); a :class:`numpy.memmap` is an ndarray and is read whole.
    """
    if is_dask_array(A) or (_is_sliceable(A) and not isinstance(A, np.memmap)):
        kind = f"{type(A).__module__}.{type(A).__name__}"
        raise ValueError(
            f"{solver} needs {name} in memory: its exact solver marks every "
            f"entry of the classes' areas (tables of {name}'s shape) and ALS "
            f"sweeps over the whole matrix; got a {kind} of shape "
            f"{tuple(A.shape)}. Load it into memory (np.asarray, or .compute() "
            "for Dask), or use butterfly_factorize, which reads such input by "
            "column slabs."
        )


def slab_source(A, *, name="A"):
    """Wrap an out-of-core matrix in a :class:`SlabSource`, or return None.

    Memory maps, Dask arrays and other arrays with ``shape``, ``dtype`` and
    slicing (not NumPy arrays in memory, sparse matrices or data frames) are
    read by slabs; ``None`` means "in memory: use :func:`check_matrix`". The
    dtype follows :func:`check_matrix`'s rules (``TypeError`` for
    non-numbers); an empty matrix is checked in memory (it is tiny).
    """
    if not (is_dask_array(A) or _is_sliceable(A)):
        return None
    try:
        dtype = np.dtype(A.dtype)
    except TypeError:
        return None
    if not all(np.isfinite(s) for s in A.shape):
        raise ValueError(
            f"{name} must have a known shape, got shape={A.shape} (for a Dask "
            "array, call its compute_chunk_sizes() first)."
        )
    shape = tuple(int(s) for s in A.shape)
    if len(shape) != 2:
        raise ValueError(
            f"{name} must be a 2-D array, got an array with ndim={len(shape)} "
            f"and shape={shape}."
        )
    if 0 in shape:
        check_matrix(np.asarray(A), name=name)
    if dtype.kind in "OUS":
        raise TypeError(
            f"{name} must hold numbers: a matrix read by slabs needs a numeric "
            f"dtype, got dtype={dtype} (convert it, or load it into memory)."
        )
    # The dtype rules of check_matrix, applied to a one-entry stand-in.
    dtype = check_matrix(np.zeros((1, 1), dtype), name=name).dtype
    return SlabSource(A, name, shape, dtype)


@dataclass
class _Tile:
    """What a slab job needs to build its blocks from the columns read.

    ``cols`` are the sorted columns of ``A`` read; ``where`` their positions
    in the slab (its other columns are padding); the slab covers the groups
    ``g0 .. g1`` of ``c2`` columns of the root target. ``row_perm`` (or
    ``None``, the identity) gives the row of ``A`` of each row of the root
    target (``m`` or more: padding).
    """

    name: str
    dtype: np.dtype
    m: int
    rows: int
    delta: int
    c2: int
    g0: int
    g1: int
    cols: np.ndarray
    where: np.ndarray
    row_perm: np.ndarray | None = None


def _working_memory(working_memory):
    """``working_memory`` in MiB, ``None`` meaning scikit-learn's setting."""
    if working_memory is None:
        working_memory = get_config()["working_memory"]
    if not (
        isinstance(working_memory, Real)
        and not isinstance(working_memory, bool)
        and 0 < working_memory < np.inf
    ):
        raise ValueError(
            f"working_memory must be a positive number of MiB, got {working_memory!r}."
        )
    return float(working_memory)


def slab_groups(rows, c2, alpha, itemsize, working_memory=None, max_groups=None):
    """Ranges ``(g0, g1)`` of column groups, one slab each, within the budget.

    A slab holds ``rows x (g1 - g0) * c2`` entries; :data:`_SLAB_COPIES` of
    them fit in ``working_memory`` MiB (default: scikit-learn's
    ``working_memory`` configuration), with at least one group per slab and
    at most ``max_groups`` (default: all).
    """
    working_memory = _working_memory(working_memory)
    per_group = _SLAB_COPIES * rows * c2 * itemsize
    step = min(alpha, max_groups or alpha, working_memory * 2**20 // per_group)
    step = int(max(1, step))
    return [(g, min(g + step, alpha)) for g in range(0, alpha, step)]


def _tile(source, perm, row_perm, rows, delta, c2, g0, g1):
    n = source.shape[1]
    cols = np.arange(g0 * c2, g1 * c2) if perm is None else perm[g0 * c2 : g1 * c2]
    real = np.flatnonzero(cols < n)
    order = np.argsort(cols[real], kind="stable")
    return _Tile(
        source.name,
        source.dtype,
        source.shape[0],
        rows,
        delta,
        c2,
        g0,
        g1,
        cols[real][order],
        real[order],
        row_perm,
    )


def _read(data, cols):
    """Columns ``cols`` (sorted) of ``data``: one slice when contiguous."""
    if cols.size == 0:
        return data[:, :0]
    lo, hi = int(cols[0]), int(cols[-1]) + 1
    if hi - lo == cols.size:
        return data[:, lo:hi]
    return data[:, cols]


def _raise_if_not_finite(piece, tile):
    """Raise ``ValueError`` naming the matrix, an entry and the tile, if not finite."""
    bad = ~np.isfinite(piece)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"{tile.name} contains NaN or infinity: {tile.name}[{i}, "
            f"{tile.cols[j]}] is {piece[i, j]}, in the tile of rows "
            f"0..{tile.m - 1} and columns {tile.cols[0]}..{tile.cols[-1]}."
        )


def _blocks(piece, tile):
    """The slab's blocks ``(delta, k, b1, c2)`` and their validity masks.

    ``piece`` holds the columns ``tile.cols`` of the matrix. In the usual
    case (the slab's columns read in order, no padding, rows in order) the
    blocks are one strided copy of it; otherwise they are gathered one group
    of ``c2`` columns at a time, rows through ``tile.row_perm`` (temporaries
    of one group). The masks say which rows ``(delta, b1)`` and columns
    ``(k, c2)`` of the blocks are entries of the matrix (not padding).
    """
    piece = np.asarray(piece)
    k, c2, delta, rows, m = tile.g1 - tile.g0, tile.c2, tile.delta, tile.rows, tile.m
    b1 = rows // delta
    blocks = np.empty((delta, k, b1, c2), tile.dtype)
    # Row i * delta + x of the target is block row i of the blocks (x, .).
    target_rows = np.arange(rows) if tile.row_perm is None else tile.row_perm
    source_rows = target_rows.reshape(b1, delta).T
    row_ok = source_rows < m
    col_ok = np.zeros(k * c2, dtype=bool)
    col_ok[tile.where] = True
    in_order = np.array_equal(tile.where, np.arange(k * c2))
    if in_order and tile.row_perm is None and m == rows:
        np.copyto(blocks, piece.reshape(b1, delta, k, c2).transpose(1, 2, 0, 3))
        return blocks, row_ok, col_ok.reshape(k, c2)
    by_position = np.argsort(tile.where, kind="stable")
    bounds = np.searchsorted(tile.where[by_position], np.arange(k + 1) * c2)
    safe_rows = np.minimum(source_rows, m - 1)[:, :, None]
    for g in range(k):
        sel = by_position[bounds[g] : bounds[g + 1]]
        out = blocks[:, g]
        if sel.size < c2:
            out[:] = 0
        out[:, :, tile.where[sel] - g * c2] = piece[safe_rows, sel[None, None, :]]
        if not row_ok.all():
            out *= row_ok[:, :, None]
    return blocks, row_ok, col_ok.reshape(k, c2)


def _scaled(blocks, exponent):
    """``blocks * 2**-exponent`` in place (exact: see :func:`scale_pow2`)."""
    if exponent:
        view = blocks.reshape(-1).view(blocks.real.dtype)
        np.ldexp(view, -exponent, out=view)
    return blocks


def factor_job(piece, tile, solve):
    """``solve`` on a slab's blocks, scaled by their own power of two.

    Returns ``(solve(blocks * 2**-e), sq_norm, e, peak)``: ``e`` is the
    slab's :func:`scaling_exponent` (0 for ordinary magnitudes), ``sq_norm``
    the squared norm of the scaled blocks and ``peak`` the slab's
    :func:`peak_exponent`, from which the matrix's exponent is decided.
    Raises ``ValueError`` naming the matrix and an entry when it holds NaN
    or infinity.
    """
    blocks, _, _ = _blocks(piece, tile)
    blocks = blocks.reshape(-1, *blocks.shape[2:])
    peak = peak_exponent(blocks)
    exponent = exponent_if_extreme(peak, blocks.dtype)
    blocks = _scaled(blocks, exponent)
    sq_norm = float(np.vdot(blocks, blocks).real)
    if not np.isfinite(sq_norm):
        _raise_if_not_finite(piece, tile)
    return solve(blocks), sq_norm, exponent, peak


def residual_job(piece, tile, U, V, exponent):
    """Squared error of the entries of a slab against the blocks ``U @ V``.

    ``U`` and ``V`` (shapes ``(delta * k, b1, r)`` and ``(delta * k, r,
    c2)``) are the model's class blocks for the slab, for the matrix scaled
    by ``2**-exponent``; padded entries are not counted. The residual is
    formed one group of columns at a time.
    """
    blocks, row_ok, col_ok = _blocks(piece, tile)
    blocks = _scaled(blocks, exponent)
    delta, k = blocks.shape[:2]
    U = U.reshape(delta, k, *U.shape[1:])
    V = V.reshape(delta, k, *V.shape[1:])
    total = 0.0
    for g in range(k):
        residual = blocks[:, g] - U[:, g] @ V[:, g]
        residual *= row_ok[:, :, None] & col_ok[g]
        total += float(np.vdot(residual, residual).real)
    if not np.isfinite(total):
        _raise_if_not_finite(piece, tile)
    return total


def _releasable(data):
    """Whether ``data`` is a shared read-only memory map (see :func:`_release`)."""
    return (
        isinstance(data, np.memmap)
        and data.mode == "r"
        and getattr(data, "_mmap", None) is not None
        and hasattr(mmap, "MADV_DONTNEED")
    )


def _release(data):
    """Drop the pages of a read-only memory map from this process's memory.

    Pages read stay resident (and counted in its RSS) until the kernel needs
    them; ``MADV_DONTNEED`` unmaps them (the file's cache is kept). Only
    for shared read-only maps, where it cannot discard data.
    """
    if _releasable(data):
        data._mmap.madvise(mmap.MADV_DONTNEED)


def _read_bands(data, cols, max_entries):
    """Columns ``cols`` of a row-major memory map, one band of rows at a time.

    Touching a page of a mapped file maps its cached neighbours too (the
    kernel's fault-around), so reading a column slab of a row-major map
    would make about the whole file resident. Copying bands of whole rows of
    at most ``max_entries`` entries, and releasing each, bounds the memory
    by one band besides the columns read.
    """
    m, n = data.shape
    piece = np.empty((m, cols.size), data.dtype)
    step = max(1, max_entries // n)
    for lo in range(0, m, step):
        piece[lo : lo + step] = _read(data[lo : lo + step], cols)
        _release(data)
    return piece


def _distributed_client():
    """The ``dask.distributed`` client that ``dask.compute`` would use, or None."""
    import dask

    client = getattr(dask.base.get_scheduler(), "__self__", None)
    distributed = sys.modules.get("distributed")
    if distributed is not None and isinstance(client, distributed.Client):
        return client
    return None


def _compute_on_workers(tasks):
    """Compute Dask ``tasks``, each with the tiles it reads on one worker.

    On a ``dask.distributed`` client, task ``s`` and the tasks it depends on
    (the tiles of its slab, computed from the lazy graph) are submitted to
    worker ``s`` modulo the number of workers, so that the tiles are not
    sent from worker to worker; only the small results come back. Without a
    client, :func:`dask.compute` runs them on the current scheduler.
    """
    import dask

    client = _distributed_client()
    workers = sorted(client.scheduler_info()["workers"]) if client else []
    if not workers:
        return list(dask.compute(*tasks))
    futures = [
        client.compute(
            task, workers=[workers[s % len(workers)]], allow_other_workers=True
        )
        for s, task in enumerate(tasks)
    ]
    return client.gather(futures)


def map_slabs(
    source,
    perm,
    row_perm,
    padded_shape,
    delta,
    c2,
    job,
    args,
    *,
    working_memory,
    progress,
):
    """Run ``job(piece, tile, *args(g0, g1))`` on every slab of the root target.

    The slabs are the groups of ``c2`` columns of
    ``A_padded[row_perm][:, perm]`` (``padded_shape`` is the shape of
    ``A_padded``; the permutations are applied to indices), cut by
    :func:`slab_groups`. A Dask source runs the slabs as Dask tasks (on the
    workers of the active ``dask.distributed`` client, if any), each reading
    its own columns, at most a column chunk of the array wide; other sources
    are read slab after slab in this process.
    Returns the results in slab order.
    """
    rows, alpha = padded_shape[0], padded_shape[1] // c2
    working_memory = _working_memory(working_memory)
    dask_input = is_dask_array(source.data)
    # A Dask array's slabs follow its column chunks (one task each).
    max_groups = max(source.data.chunks[1]) // c2 if dask_input else None
    groups = slab_groups(
        rows, c2, alpha, source.dtype.itemsize, working_memory, max_groups
    )
    tiles = [
        _tile(source, perm, row_perm, rows, delta, c2, g0, g1) for g0, g1 in groups
    ]
    if dask_input:
        import dask

        progress(f"{source.name}: {len(tiles)} slabs of {rows} rows as Dask tasks")
        tasks = [
            dask.delayed(job)(_read(source.data, tile.cols), tile, *args(g0, g1))
            for tile, (g0, g1) in zip(tiles, groups)
        ]
        return _compute_on_workers(tasks)
    data = source.data
    bands = _releasable(data) and not data.flags.f_contiguous
    band_entries = int(working_memory * 2**20 / _SLAB_COPIES / data.dtype.itemsize)
    results = []
    for s, (tile, (g0, g1)) in enumerate(zip(tiles, groups)):
        if bands and tile.cols.size:
            piece = _read_bands(data, tile.cols, band_entries)
        else:
            piece = _read(data, tile.cols)
        results.append(job(piece, tile, *args(g0, g1)))
        del piece
        _release(data)
        progress(
            f"{source.name}: slab {s + 1}/{len(tiles)} (columns {g0 * c2}.."
            f"{g1 * c2 - 1} of the permuted matrix) done"
        )
    return results


def root_split_slabs(
    source,
    perm,
    row_perm,
    left,
    right,
    orthonormalize,
    svd_tol,
    n_jobs,
    working_memory,
    progress,
):
    """The root split of an out-of-core matrix, slab by slab.

    Each slab of whole column groups of the root target holds whole blocks
    (:mod:`skbutterfly._slabs`); its classes are solved on their own and
    only their factors are kept, then assembled as :func:`split_step` would.
    Each slab is solved at its own power-of-two scale, then its factors are
    brought to the matrix's (:func:`exponent_if_extreme` of the largest
    peak), recorded on ``source`` with the squared norm at that scale.
    """
    _, b1, alpha, r, delta, c2, _ = pair_dims(left, right)
    solve = partial(
        split_factors,
        rank=r,
        orthonormalize=orthonormalize,
        svd_tol=svd_tol,
        n_jobs=None if is_dask_array(source.data) else n_jobs,
    )
    parts = map_slabs(
        source,
        perm,
        row_perm,
        (left.shape[0], right.shape[1]),
        delta,
        c2,
        factor_job,
        lambda g0, g1: (solve,),
        working_memory=working_memory,
        progress=progress,
    )
    exponent = exponent_if_extreme(max(peak for *_, peak in parts), source.dtype)
    source.exponent = exponent
    source.sq_norm = sum(ldexp_or_inf(sq, 2 * (e - exponent)) for _, sq, e, _ in parts)
    U = np.concatenate([u.reshape(delta, -1, b1, r) for (u, _), *_ in parts], axis=1)
    R = np.concatenate(
        [
            scale_pow2(v, e - exponent).reshape(delta, -1, r, c2)
            for (_, v), _, e, _ in parts
        ],
        axis=1,
    )
    return merge_blocks(
        U.reshape(1, delta, alpha, 1, b1, r),
        R.reshape(1, delta, alpha, 1, r, c2),
        left,
        right,
    )


def slab_error(
    source, factors, patterns, perm, row_perm, split, working_memory, progress
):
    """``||2**-e A - B||_F`` for an out-of-core ``A``: one more pass over its slabs.

    ``e`` is ``source.exponent`` (``B`` approximates the scaled matrix). The
    model's class blocks at the root split are those of the fused left and
    right parts (as in :func:`_root_error`); each slab's residual is formed
    on its entries only (padding excluded).
    """
    left = functools.reduce(fuse_values, factors[: split + 1])
    right = functools.reduce(fuse_values, factors[split + 1 :])
    U, V = class_blocks(left, right)
    U, V = U[0, :, :, 0], V[0, :, :, 0]
    delta, _, b1, r = U.shape
    c2 = V.shape[-1]
    parts = map_slabs(
        source,
        perm,
        row_perm,
        (patterns[0].shape[0], patterns[-1].shape[1]),
        delta,
        c2,
        residual_job,
        lambda g0, g1: (
            U[:, g0:g1].reshape(-1, b1, r),
            V[:, g0:g1].reshape(-1, r, c2),
            source.exponent,
        ),
        working_memory=working_memory,
        progress=progress,
    )
    return float(np.sqrt(sum(parts)))
