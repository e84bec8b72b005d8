"""Nipype workflow builders. They only wire interfaces; the science is in ``xaibids.features``."""

#: Start method of Nipype MultiProc's worker processes. As in fMRIPrep, 'forkserver': a worker
#: forked from a process whose PyTorch/OpenMP thread pool is running can deadlock at its first
#: parallel operation (GNU OpenMP is not fork-safe); forkserver workers start from a clean
#: single-threaded server.
MULTIPROC_START_METHOD = "forkserver"


def execution_plugin_args(plugin: str, plugin_args: dict | None) -> dict:
    """``plugin_args`` for ``Workflow.run``, with a fork-safe start method for MultiProc."""
    args = dict(plugin_args or {})
    if plugin == "MultiProc":
        args.setdefault("mp_context", MULTIPROC_START_METHOD)
    return args
