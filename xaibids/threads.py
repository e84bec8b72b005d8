"""Thread limits: one count for OpenMP, BLAS and PyTorch, in this process and its children.

``--omp-nthreads`` is the most threads one task may use (fMRIPrep's meaning). OpenMP and BLAS
libraries read ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS`` once, when
they load, so the environment reaches only processes started afterwards (Nipype's MultiProc
workers, ``sbatch`` jobs submitted by the SLURM plugin with the default ``--export=ALL``);
pools already loaded into a running process are resized with threadpoolctl, and PyTorch's
intra-op pool with ``torch.set_num_threads``. Each xaibids interface also applies its node's
declared thread count itself (:func:`limited_threads`), so a node's threads never depend on
what its worker inherited: MultiProc's forkserver, for one, keeps the environment of the first
run in a process.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

#: The variables every process started by xaibids inherits (``--omp-nthreads``).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextlib.contextmanager
def limited_threads(n_threads: int) -> Iterator[None]:
    """Run the block with at most ``n_threads`` OpenMP/BLAS/PyTorch threads in this process.

    For a Nipype node this keeps the threads it uses equal to the ``n_procs`` it declared, so
    MultiProc's accounting holds. Everything is restored afterwards, which matters with the
    ``Linear`` plugin (nodes run in the calling process). ``n_threads`` 0 changes nothing.
    """
    if not n_threads:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = sys.modules.get("torch")  # only a PyTorch that is loaded already has a pool to set
    previous = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=int(n_threads)):
        if torch is not None:
            torch.set_num_threads(int(n_threads))
        try:
            yield
        finally:
            if torch is not None:
                torch.set_num_threads(previous)


@contextlib.contextmanager
def run_threads(n_threads: int) -> Iterator[None]:
    """Export ``n_threads`` to child processes and limit this one to it, for a whole run.

    The ``THREAD_VARIABLES`` are set in ``os.environ`` (replacing a value the container or the
    shell gave) and restored on exit, so calling the CLI in-process leaves no trace.
    """
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(int(n_threads)) for name in THREAD_VARIABLES})
    try:
        with limited_threads(n_threads):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
