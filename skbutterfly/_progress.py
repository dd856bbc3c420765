"""Progress lines for ``verbose``, the scikit-learn way: prefix, message, time."""

# Authors: The skbutterfly developers
# SPDX-License-Identifier: BSD-3-Clause

import time


class Progress:
    """Print ``[name] message (elapsed s)`` lines when ``verbose`` is high enough.

    ``verbose=0`` is silent; level-1 lines (one per phase: a split, an ALS
    start, a factor pair) print from ``verbose=1``, level-2 lines (one per
    ALS iteration) from ``verbose=2``. The time is counted from the
    creation of the object.

    Examples
    --------
    >>> from skbutterfly._progress import Progress
    >>> progress = Progress("demo", verbose=1)
    >>> progress("split 1/3")  # doctest: +ELLIPSIS
    [demo] split 1/3 (... s)
    >>> progress("iteration 1", level=2)        # silent at verbose=1
    >>> Progress("demo", verbose=0)("nothing")  # silent
    """

    def __init__(self, name: str, verbose: int):
        self.name = name
        self.verbose = int(verbose)
        self._start = time.perf_counter()

    def __bool__(self) -> bool:
        return self.verbose > 0

    def elapsed(self) -> float:
        """Seconds since the object was created."""
        return time.perf_counter() - self._start

    def __call__(self, message: str, level: int = 1) -> None:
        """Print ``message`` with the elapsed time if ``verbose >= level``."""
        if self.verbose >= level:
            print(f"[{self.name}] {message} ({self.elapsed():.2f} s)", flush=True)
