"""Nipype workflow builders. They only wire interfaces; the science is in ``xaibids.features``."""

#: Start method of Nipype MultiProc's worker processes. As in fMRIPrep, 'forkserver': a worker
#: forked from a process whose PyTorch/OpenMP thread pool is running can deadlock at its first
#: parallel operation (GNU OpenMP is not fork-safe); forkserver workers start from a clean
#: single-threaded server.
MULTIPROC_START_METHOD = "forkserver"

#: Plugins that run the nodes on the calling machine; the others submit them as cluster jobs.
LOCAL_PLUGINS = ("Linear", "MultiProc", "LegacyMultiProc", "IPython")

#: Seconds between a local plugin's polls of its workers. Nipype's default, 2 s, is most of the
#: participant level's cost per run (docs/benchmarks.md: 1.9 s of 2.0 s per run with one
#: worker); cluster plugins keep it, as each poll runs ``squeue``.
LOCAL_POLL_SECONDS = 0.2


def set_poll_interval(workflow, plugin: str) -> None:
    """Poll local workers every :data:`LOCAL_POLL_SECONDS` (cluster plugins: Nipype's 2 s)."""
    if plugin in LOCAL_PLUGINS:
        workflow.config["execution"]["poll_sleep_duration"] = LOCAL_POLL_SECONDS


def execution_plugin_args(plugin: str, plugin_args: dict | None) -> dict:
    """``plugin_args`` for ``Workflow.run``, with a fork-safe start method for MultiProc."""
    args = dict(plugin_args or {})
    if plugin == "MultiProc":
        args.setdefault("mp_context", MULTIPROC_START_METHOD)
    return args
