"""
Running factorizations on a Dask cluster
========================================

Every skbutterfly algorithm that takes ``n_jobs`` (the butterfly
factorization, the fixed-support solver, the quantization, and the
estimators built on them) cuts its independent batches into chunks and runs
them through scikit-learn's ``Parallel``. The joblib backend is therefore
chosen by the caller: inside ``joblib.parallel_config(backend="dask")`` the
chunks run on the workers of the active ``dask.distributed.Client``, and
``n_jobs=None`` uses every worker thread. Nothing else changes, and the
results are identical to the serial ones.

To use an existing cluster, pass its scheduler address::

    python examples/distributed_dask.py tcp://scheduler:8786

Without an address, the script starts a ``LocalCluster`` on this machine
(two worker processes on the loopback interface), which is the same set-up
in miniature. Install the optional dependencies with
``pip install "skbutterfly[dask]"``; the workers need skbutterfly installed
too (the same version as the client).

This file is not executed when the documentation is built: it starts
processes and may connect to a remote scheduler.
"""

# %%
# Connecting to the scheduler
# ---------------------------
# ``Client(address)`` connects to a running scheduler; without an address we
# start a local one. On one machine a cluster only adds overhead (tasks are
# serialized to the workers); it pays off when the workers are other
# machines, or when the data already lives on the cluster.
import sys
import time

import joblib
import numpy as np

from skbutterfly import ButterflyFactorizer, butterfly_factorize, quantize_butterfly
from skbutterfly.datasets import add_noise, random_butterfly


def connect(address=None):
    """Return ``(client, cluster)``; ``cluster`` is None for a remote one."""
    from distributed import Client, LocalCluster

    if address is not None:
        return Client(address), None
    # Processes need the ``if __name__ == "__main__"`` guard below, which this
    # script has. Every server (scheduler, workers, their HTTP endpoints)
    # listens on the loopback interface only, on free ports.
    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",
        worker_dashboard_address="127.0.0.1:0",
    )
    return Client(cluster), cluster


# %%
# The same calls, serial and on the cluster
# -----------------------------------------
# Inside ``parallel_config(backend="dask")`` the batches of every split of
# the factorization and the chunks of rank-one terms of the quantization go
# to the workers. BLAS runs with one thread in each worker process (dask's
# nanny sets ``OMP_NUM_THREADS=1``), and skbutterfly limits it to one thread
# around its own parallel regions on the client, so the cores are never
# oversubscribed.


def compare(n=1024):
    A = add_noise(random_butterfly(n, random_state=0).toarray(), 0.1, random_state=1)
    runs = {
        "butterfly_factorize": lambda n_jobs: butterfly_factorize(A, n_jobs=n_jobs),
        "ButterflyFactorizer": lambda n_jobs: (
            ButterflyFactorizer(n_jobs=n_jobs).fit(A).butterfly_
        ),
        "quantize_butterfly": lambda n_jobs: quantize_butterfly(
            random_butterfly(n, random_state=2), 8, n_jobs=n_jobs
        ),
    }
    print(f"{'call':<22} {'serial s':>9} {'dask s':>9}  identical")
    for name, run in runs.items():
        start = time.perf_counter()
        serial = run(1)
        t_serial = time.perf_counter() - start
        with joblib.parallel_config(backend="dask"):
            start = time.perf_counter()
            distributed = run(None)
            t_dask = time.perf_counter() - start
        identical = all(
            np.array_equal(a, b) for a, b in zip(serial.factors, distributed.factors)
        )
        print(f"{name:<22} {t_serial:>9.3f} {t_dask:>9.3f}  {identical}")


# %%
# Putting it together
# -------------------
# Always close the client (and the local cluster) when done: ``with`` blocks
# do it even when a call fails.


def main(argv):
    address = argv[1] if len(argv) > 1 else None
    client, cluster = connect(address)
    try:
        workers = client.scheduler_info()["workers"]
        print(f"connected to {client.scheduler.address}: {len(workers)} workers")
        with joblib.parallel_config(backend="dask"):
            print(f"joblib jobs under the dask backend: {joblib.effective_n_jobs()}")
        compare()
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


if __name__ == "__main__":
    main(sys.argv)
