"""Timing helper shared by the benchmark scripts."""

import time

import numpy as np


def best_time(func, repeat):
    """Best wall time of ``repeat`` calls of ``func`` and the last result."""
    best, result = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result
