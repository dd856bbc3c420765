"""Butterfly dictionaries against MiniBatchDictionaryLearning: PSNR, time, memory.

Two tables, each model run in one process on the same inputs, BLAS limited
to ``--threads`` threads (1 by default: the machines are shared):

1. **Denoising.** A grey-level photograph bundled with scikit-learn
   (``china.jpg``, halved, cropped to 128 x 128, values in [0, 1]) with
   Gaussian noise of sigma 0.1. Dictionaries of 256 atoms are learned on
   ``--n-train`` random 16 x 16 patches of the noisy image (centred) by
   ``MiniBatchDictionaryLearning`` and by ``ButterflyDictionaryLearning``
   (the default, the classic J = 8 at rank 1, then J = 8 at rank 2, J = 4
   at rank 2 and J = 2 at ranks 1 and 4), with the same number of epochs
   (10, the default ``max_iter`` of both); every patch is then coded by OMP
   with ``--n-nonzero`` atoms and the patches averaged back. Columns: PSNR
   of the denoised image (dB), its difference to the dense dictionary, fit
   and transform times, stored values of the dictionary, peak memory of a
   one-epoch ``fit`` (tracemalloc; the times come from untraced runs).
2. **Transform speed.** ``--n-transform`` patches of the halved image, of
   size 16 x 16 and 32 x 32 (256 and 1024 features, as many atoms), coded by
   OMP with the same nonzeros by both estimators fitted on ``--n-fit``
   patches (one epoch; fit time printed beside), ours with the default
   architecture and with J = 2 at ranks 1 and 4; ``ratio`` is
   MiniBatchDictionaryLearning's time over ours, ``corr`` the share of our
   transform spent on the correlations.

Run ``python benchmarks/bench_dictionary.py`` (about five minutes on one
core) or ``--quick``.
"""

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from _timing import best_time
from sklearn.base import clone
from sklearn.datasets import load_sample_image
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.image import (
    extract_patches_2d,
    reconstruct_from_patches_2d,
)
from threadpoolctl import threadpool_limits

from skbutterfly import ButterflyDictionaryLearning, PoorFitWarning
from skbutterfly._dictionary_learning import _correlations

# (n_factors, rank) of the butterflies: the default (the classic J = 8 at
# 256 features), then shallower or richer ones.
ARCHITECTURES = ((None, 1), (8, 2), (4, 2), (2, 1), (2, 4))


def noisy_image(sigma=0.1, seed=0):
    image = load_sample_image("china.jpg").mean(axis=2)[::2, ::2] / 255.0
    image = image[:128, :128]
    rng = np.random.default_rng(seed)
    return image, image + sigma * rng.standard_normal(image.shape)


def psnr(estimate, image):
    return 10 * np.log10(1.0 / np.mean((estimate - image) ** 2))


def models(n_nonzero, epochs, seed=0):
    coder = {"transform_algorithm": "omp", "transform_n_nonzero_coefs": n_nonzero}
    dense = MiniBatchDictionaryLearning(
        n_components=None, max_iter=epochs, random_state=seed, **coder
    )
    ours = {
        f"butterfly J={J or 'default'} r={r}": ButterflyDictionaryLearning(
            n_factors=J, rank=r, max_iter=epochs, tol=0, random_state=seed, **coder
        )
        for J, r in ARCHITECTURES
    }
    return {"MiniBatchDictionaryLearning": dense, **ours}


def stored_values(est):
    if hasattr(est, "butterfly_"):
        return est.butterfly_.nnz
    return est.components_.size


def timed_fit(est, X):
    """Fit time, and the peak traced memory of a one-epoch fit of a clone.

    tracemalloc slows Python-level loops down (scikit-learn's coders most),
    so the time comes from an untraced fit; the peak does not grow with the
    number of epochs.
    """
    start = time.perf_counter()
    est.fit(X)
    elapsed = time.perf_counter() - start
    tracemalloc.start()
    clone(est).set_params(max_iter=1).fit(X)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return elapsed, peak


def denoising(n_train, n_nonzero, epochs):
    image, noisy = noisy_image()
    patches = extract_patches_2d(noisy, (16, 16))
    flat = patches.reshape(len(patches), -1)
    means = flat.mean(axis=1, keepdims=True)
    centred = flat - means
    rng = np.random.default_rng(0)
    train = centred[rng.choice(len(centred), n_train, replace=False)]
    print(
        f"\nDenoising: {len(centred)} patches 16x16, 256 atoms, {n_train} training "
        f"patches, {n_nonzero} nonzeros, {epochs} epochs; noisy PSNR "
        f"{psnr(noisy, image):.2f} dB"
    )
    header = (
        f"{'model':>28} {'PSNR':>7} {'vs dense':>8} {'fit s':>7} {'transf s':>8} "
        f"{'values':>7} {'fit MB':>7}"
    )
    print(header)
    reference = None
    for name, est in models(n_nonzero, epochs).items():
        fit_time, peak = timed_fit(est, train)
        transform_time, codes = best_time(lambda est=est: est.transform(centred), 1)
        restored = reconstruct_from_patches_2d(
            (codes @ est.components_ + means).reshape(patches.shape), image.shape
        )
        quality = psnr(restored, image)
        reference = quality if reference is None else reference
        print(
            f"{name:>28} {quality:7.2f} {quality - reference:+8.2f} {fit_time:7.2f} "
            f"{transform_time:8.2f} {stored_values(est):7d} {peak / 2**20:7.1f}"
        )


def transform_speed(side, n_transform, n_fit, n_nonzero):
    image = load_sample_image("china.jpg").mean(axis=2)[::2, ::2] / 255.0
    patches = extract_patches_2d(
        image, (side, side), max_patches=n_transform + n_fit, random_state=0
    ).reshape(n_transform + n_fit, -1)
    patches -= patches.mean(axis=1, keepdims=True)
    fit, test = patches[:n_fit], patches[n_fit:]
    coder = {"transform_algorithm": "omp", "transform_n_nonzero_coefs": n_nonzero}
    dense = MiniBatchDictionaryLearning(max_iter=1, random_state=0, **coder)
    start = time.perf_counter()
    dense.fit(fit)
    dense_fit = time.perf_counter() - start
    dense_transform, _ = best_time(lambda: dense.transform(test), 2)
    for J, r in ((None, 1), (2, 1), (2, 4)):
        ours = ButterflyDictionaryLearning(
            n_factors=J, rank=r, max_iter=1, tol=0, random_state=0, **coder
        )
        start = time.perf_counter()
        ours.fit(fit)
        ours_fit = time.perf_counter() - start
        ours_transform, _ = best_time(lambda ours=ours: ours.transform(test), 2)
        corr, _ = best_time(
            lambda ours=ours: _correlations(ours.butterfly_, ours.components_, test),
            2,
        )
        label = f"J={J or 'def'} r={r}"
        print(
            f"{side * side:>8} {label:>9} {dense_fit:9.2f} "
            f"{ours_fit:9.2f} {dense_transform:9.2f} {ours_transform:9.2f} "
            f"{dense_transform / ours_transform:6.2f} {corr / ours_transform:5.0%}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--n-nonzero", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--n-transform", type=int, default=20000)
    parser.add_argument("--n-fit", type=int, default=2000)
    parser.add_argument("--sides", type=int, nargs="*", default=[16, 32])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args()
    if args.quick:
        args.n_train, args.n_transform, args.n_fit = [500], 2000, 500
        args.epochs = 3
    warnings.simplefilter("ignore", ConvergenceWarning)
    # Denoising codes noise it must not fit: relative errors above 0.5.
    warnings.simplefilter("ignore", PoorFitWarning)
    with threadpool_limits(limits=args.threads, user_api="blas"):
        for n_train in args.n_train:
            denoising(n_train, args.n_nonzero, args.epochs)
        if not args.sides:
            return
        print(
            f"\nTransform (OMP, {args.n_nonzero} nonzeros) of {args.n_transform} "
            f"patches; fit on {args.n_fit} patches, one epoch; times in s"
        )
        print(
            f"{'features':>8} {'ours':>9} {'fit dense':>9} {'fit ours':>9} "
            f"{'tr dense':>9} {'tr ours':>9} {'ratio':>6} {'corr':>5}"
        )
        for side in args.sides:
            transform_speed(side, args.n_transform, args.n_fit, args.n_nonzero)


if __name__ == "__main__":
    main()
