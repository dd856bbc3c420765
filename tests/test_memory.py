"""Peak memory of a factorization at N = 4096, measured in a fresh subprocess.

The child builds the input (one ``N x N`` array, no temporaries), factorizes,
and reports the peak of what the factorization allocated on top of its input
(``tracemalloc``, which NumPy feeds) and, for comparison, the growth of the
resident peak (``ru_maxrss``; it cannot forget earlier peaks such as imports,
so it is printed, not asserted). A large
factorization must hold no more than a few copies of the input, and float32
must need about half of what float64 needs.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from skbutterfly import round_to_format

N = 4096

_CHILD = textwrap.dedent(
    """
    import json, resource, sys, tracemalloc
    import numpy as np
    from skbutterfly._hierarchical import butterfly_factorize

    n, dtype = int(sys.argv[1]), np.dtype(sys.argv[2])
    # Import and run every code path once, so that the peak below is data.
    butterfly_factorize(np.ones((64, 64), dtype))
    # Filled by row blocks: drawing the whole float32 matrix at once would
    # pass through a float64 copy and raise the peak before the measurement.
    rng = np.random.default_rng(0)
    A = np.empty((n, n), dtype)
    for start in range(0, n, 256):
        A[start : start + 256] = rng.standard_normal((256, n))
    A.flags.writeable = False
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tracemalloc.start()
    B = butterfly_factorize(A)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    unit = 1 if sys.platform == "darwin" else 1024
    print(json.dumps({
        "input": A.nbytes,
        # NumPy reports its buffers to tracemalloc: the peak of what the
        # factorization allocated, independent of earlier peaks of the process
        # (imports), which ru_maxrss cannot forget.
        "extra": traced_peak,
        "rss_growth": (after - before) * unit,
        "nnz": B.nnz,
        "dtype": str(B.dtype),
    }))
    """
)


def _peak_growth(dtype):
    pytest.importorskip("resource", reason="needs the POSIX resource module")
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, str(N), dtype],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def peaks():
    return {dtype: _peak_growth(dtype) for dtype in ("float64", "float32")}


def test_factorization_holds_a_few_copies_of_the_input(peaks):
    for dtype, figures in peaks.items():
        ratio = figures["extra"] / figures["input"]
        print(
            f"N={N} {dtype}: input {figures['input'] / 2**20:.0f} MiB, peak "
            f"allocations {figures['extra'] / 2**20:.0f} MiB ({ratio:.2f} x "
            f"input; growth of the resident peak {figures['rss_growth'] / 2**20:.0f}"
            " MiB)"
        )
        assert figures["dtype"] == dtype
        assert figures["extra"] <= 4 * figures["input"]


def test_float32_roughly_halves_the_peak(peaks):
    # The peak memory of a factorization is its input plus the growth; the
    # growth alone can be near zero for an implementation that reuses memory.
    peak64, peak32 = (peaks[d]["input"] + peaks[d]["extra"] for d in peaks)
    print(f"peak (input + growth) float32 / float64 = {peak32 / peak64:.2f}")
    assert 0.35 <= peak32 / peak64 <= 0.65, peaks
    assert peaks["float32"]["input"] * 2 == peaks["float64"]["input"]


@pytest.mark.parametrize(
    ("m", "n", "fmt", "spread"),
    [(64, 64, 16, 0), (200, 200, 12, 0), (24, 24, "float16", 30)],
)
def test_quantization_sweep_memory_is_bounded(m, n, fmt, spread):
    # Materializing every candidate's y side (m 2^(t-1) candidates per
    # entry of x in F_t; m times the number of float16 values when the
    # term's range fills float16 and the whole format is swept) would take
    # hundreds of MiB; the sweep works in windows whatever t and the lengths.
    import tracemalloc

    from skbutterfly import FloatFormat, quantize_rank_one

    ceiling = 64 * 2**20  # documented in quantize_rank_one

    fmt = FloatFormat(fmt) if isinstance(fmt, int) else FloatFormat.from_name(fmt)
    per_entry = 2 ** (fmt.t - 1) * (fmt.emax - fmt.emin + 2 if fmt.bounded else 1)
    assert 8 * m * per_entry * n > 2 * ceiling  # what windows avoid
    rng = np.random.default_rng(0)
    x = rng.standard_normal(m) * np.exp2(rng.uniform(-spread, spread, m))
    y = rng.standard_normal(n) * np.exp2(rng.uniform(-spread, spread, n))
    quantize_rank_one(x[:2], y[:2], fmt)  # warm up: caches of the grids
    tracemalloc.start()
    xh, yh = quantize_rank_one(x, y, fmt)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"m={m} n={n} {fmt}: peak {peak / 2**20:.1f} MiB")
    assert peak <= ceiling
    rounded = [round_to_format(v, fmt) for v in (x, y)]
    rtn = np.linalg.norm(np.outer(x, y) - np.outer(*rounded))
    assert np.linalg.norm(np.outer(x, y) - np.outer(xh, yh)) <= rtn
