"""Group level: the ensemble's training as a Nipype graph that a cluster can spread out.

:func:`xaibids.learning.ensemble.run_ensemble` trains and attributes every fold in one
process. :func:`init_group_training_wf` splits the same work into independent nodes::

    train_fold1_chunk1 ─┐                       (TrainChunk: some models of one fold)
    train_fold1_chunk2 ─┴─ attribute_fold1 ─┐   (AttributeFold: that fold's test subjects)
    train_fold2_chunk1 ─┐                   ├─ merge_folds ─ outputnode
    train_fold2_chunk2 ─┴─ attribute_fold2 ─┘   (MergeFolds: the EnsembleResult)

The training nodes of all folds are independent of each other, so Nipype's ``MultiProc``
runs as many at once as there are processes, and its ``SLURM``/``SGE``/``PBS`` plugins submit
each as a job. Every model is checkpointed under the shared ``checkpoint_dir`` with the
fingerprint :func:`~xaibids.learning.ensemble.run_ensemble` uses (same code), so the graph,
``run_ensemble`` and :func:`~xaibids.learning.ensemble.load_fold_models` reuse each other's
models, and the merged result equals ``run_ensemble``'s.

Per-node resources: ``node_plugin_args`` go to the training and attribution nodes only (e.g.
``{"sbatch_args": "--partition=gpu --gres=gpu:1"}`` for the SLURM plugin, which appends them to
the global ``sbatch_args``; add ``"overwrite": True`` to replace those instead), so that they can
run on a GPU partition while the rest of the run keeps the global (CPU) settings.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

from nipype.interfaces import utility as niu
from nipype.pipeline import engine as pe
from niworkflows.engine.workflows import LiterateWorkflow as Workflow

from xaibids.errors import XaibidsError, crash_message
from xaibids.interfaces.learning import (
    AttributeFold,
    MergeFolds,
    TrainChunk,
    load_pickle,
    save_dataset,
)
from xaibids.workflows import LOCAL_PLUGINS, execution_plugin_args, set_poll_interval

LOGGER = logging.getLogger("xaibids")

# Nodes look at checkpoints and files by content: a rerun with the same weights keeps the
# attribution nodes' results (Nipype's default, timestamps, would redo them every time).
_NODE_CONFIG = {"execution": {"hash_method": "content"}}


def model_chunks(n_models: int, chunk_size: int) -> list[list[int]]:
    """Model indices ``0 .. n_models - 1`` in consecutive chunks of at most ``chunk_size``."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}.")
    return [list(range(start, min(start + chunk_size, n_models)))
            for start in range(0, n_models, chunk_size)]


def default_chunk_size(n_models: int, n_folds: int, plugin: str = "MultiProc",
                       plugin_args: dict | None = None) -> int:
    """Models per training node when none is given.

    * ``Linear``: all models of a fold in one node (nothing runs in parallel anyway);
    * ``MultiProc`` (and the other local plugins): just enough chunks per fold for the folds'
      chunks to fill the processes (``n_procs`` of ``plugin_args``, else the CPU count) -- with
      at least as many folds as processes, one chunk per fold. More chunks than processes
      would only add the per-node cost of loading the dataset;
    * cluster plugins (``SLURM``, ``SGE``, ``PBS``, ...): ``ceil(n_models / 2)``, two jobs per
      fold. Every job pays a queue wait and the start of Python and PyTorch, so chunks should
      hold minutes of training; pass ``chunk_size`` to spread large ensembles wider.
    """
    if plugin == "Linear":
        return n_models
    if plugin in LOCAL_PLUGINS:
        procs = int((plugin_args or {}).get("n_procs") or os.cpu_count() or 1)
        per_fold = max(1, math.ceil(procs / n_folds))
        return max(1, math.ceil(n_models / per_fold))
    return max(1, math.ceil(n_models / 2))


def _describe(ens_config, n_chunks: int) -> str:
    return (
        f"Within each of the {ens_config.n_folds} cross-validation folds, an ensemble of "
        f"{ens_config.n_models} {ens_config.model} models was trained, the models differing only "
        "in their random initialization (seeds derived from the run's random seed); the models "
        "of each fold were checkpointed as they finished "
        + (f"(trained in {n_chunks} independent chunks per fold) " if n_chunks > 1 else "")
        + "and then explained the fold's held-out subjects, whose maps were stabilized across "
        "the ensemble. "
    )


def _uses_gpu(ens_config) -> bool:
    if ens_config.device == "cuda":
        return True
    if ens_config.device == "auto":
        import torch

        return bool(torch.cuda.is_available())
    return False


def init_group_training_wf(dataset_file, ens_config, checkpoint_dir, chunk_size,
                           node_plugin_args=None, num_threads=1, name="group_training_wf"):
    """Build the group level's training graph: folds x chunks of training, per-fold attribution.

    Parameters
    ----------
    dataset_file : str or Path
        The dataset, written by :func:`xaibids.interfaces.learning.save_dataset`.
    ens_config : :class:`xaibids.learning.ensemble.EnsembleConfig`
    checkpoint_dir : str or Path
        Folder of the model checkpoints; on a cluster, on a filesystem all jobs share.
    chunk_size : int
        Models per training node (:func:`default_chunk_size` chooses one).
    node_plugin_args : dict, optional
        Set as ``plugin_args`` of every training and attribution node, e.g.
        ``{"sbatch_args": "--partition=gpu --gres=gpu:1"}`` for Nipype's SLURM plugin.
    num_threads : int, default=1
        PyTorch threads of each training and attribution node, also its ``n_procs`` (what
        MultiProc reserves for it). PyTorch's CPU results depend on the thread count in the
        last bits (which training can amplify), so the result equals ``run_ensemble``'s exactly
        when that runs with as many threads (``torch.set_num_threads``).
    name : str

    Returns
    -------
    workflow
        With ``outputnode.result_file`` (the pickled
        :class:`~xaibids.learning.ensemble.EnsembleResult`), ``outputnode.n_trained`` and
        ``outputnode.n_reused``. Nodes: ``train_fold<k>_chunk<c>`` (TrainChunk),
        ``attribute_fold<k>`` (AttributeFold), ``merge_folds`` (MergeFolds), plus
        ``fold<k>_reports``/``gather_*`` list joins.
    """
    from xaibids.learning.ensemble import EnsembleConfig, config_to_dict

    if not isinstance(ens_config, EnsembleConfig):
        raise TypeError("init_group_training_wf needs an EnsembleConfig.")
    if node_plugin_args is not None and not isinstance(node_plugin_args, dict):
        raise TypeError(f"node_plugin_args must be a dict, got {type(node_plugin_args).__name__}.")
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}.")
    chunks = model_chunks(ens_config.n_models, chunk_size)
    n_folds = ens_config.n_folds
    fold_width, chunk_width = len(str(n_folds)), len(str(len(chunks)))
    dataset_file = str(Path(dataset_file).absolute())  # nodes run in their own folders
    common = {
        "dataset_file": dataset_file,
        "config": config_to_dict(ens_config),
        "checkpoint_dir": str(Path(checkpoint_dir).absolute()),
        "use_gpu": _uses_gpu(ens_config),
    }

    workflow = Workflow(name=name)
    workflow.__desc__ = _describe(ens_config, len(chunks))
    gather_folds = pe.Node(niu.Merge(n_folds), name="gather_folds", run_without_submitting=True)
    gather_training = pe.Node(niu.Merge(n_folds * len(chunks)), name="gather_training",
                              run_without_submitting=True)
    merge = pe.Node(MergeFolds(dataset_file=dataset_file, config=common["config"]),
                    name="merge_folds")
    outputnode = pe.Node(niu.IdentityInterface(fields=["result_file", "n_trained", "n_reused"]),
                         name="outputnode")
    heavy = []
    for k in range(1, n_folds + 1):
        reports = pe.Node(niu.Merge(len(chunks)), name=f"fold{k:0{fold_width}d}_reports",
                          run_without_submitting=True)
        attribute = pe.Node(AttributeFold(fold=k, **common),
                            name=f"attribute_fold{k:0{fold_width}d}", n_procs=num_threads)
        heavy.append(attribute)
        for c, indices in enumerate(chunks, start=1):
            train = pe.Node(TrainChunk(fold=k, indices=indices, **common),
                            name=f"train_fold{k:0{fold_width}d}_chunk{c:0{chunk_width}d}",
                            n_procs=num_threads)
            heavy.append(train)
            workflow.connect([
                (train, reports, [("out_report", f"in{c}")]),
                (train, gather_training, [("status", f"in{(k - 1) * len(chunks) + c}")]),
            ])
        workflow.connect([
            (reports, attribute, [("out", "chunk_reports")]),
            (attribute, gather_folds, [("out_file", f"in{k}")]),
        ])
    workflow.connect([
        (gather_folds, merge, [("out", "fold_results")]),
        (gather_training, merge, [("out", "training")]),
        (merge, outputnode, [("result_file", "result_file"), ("n_trained", "n_trained"),
                             ("n_reused", "n_reused")]),
    ])
    for node in heavy:
        if node_plugin_args:
            node.plugin_args = dict(node_plugin_args)
    for node in workflow._get_all_nodes():
        node.config = {section: dict(values) for section, values in _NODE_CONFIG.items()}
    return workflow


def run_group_ensemble(dataset, ens_config, checkpoint_dir, work_dir, plugin="MultiProc",
                       plugin_args=None, chunk_size=None, node_plugin_args=None, num_threads=1):
    """Train, attribute and merge the ensemble with Nipype; a drop-in for ``run_ensemble``.

    Writes the dataset once to ``work_dir/group_training/dataset-<hash>.npz``, builds
    :func:`init_group_training_wf` in ``work_dir``, runs it with ``plugin`` and returns the
    merged result, equal to :func:`xaibids.learning.ensemble.run_ensemble` ``(dataset,
    ens_config, checkpoint_dir)``. Progress is logged per model and per chunk by the nodes
    (on the ``xaibids`` logger; in the job logs on a cluster) and per node by Nipype.

    Parameters
    ----------
    dataset : :class:`xaibids.learning.dataset.TimeseriesDataset`
    ens_config : :class:`xaibids.learning.ensemble.EnsembleConfig`
    checkpoint_dir : str or Path
        Folder of the model checkpoints (shared by all jobs on a cluster).
    work_dir : str or Path
        Nipype's work folder (the graph runs in ``work_dir/group_training_wf``; crash files go
        to ``work_dir/group_training/crash``).
    plugin : str, default="MultiProc"
        Nipype execution plugin (``Linear``, ``MultiProc``, ``SLURM``, ...).
    plugin_args : dict, optional
        Its arguments (``NipypeSettings.plugin_args``); for MultiProc without ``n_procs``, all
        CPUs.
    chunk_size : int, optional
        Models per training node; :func:`default_chunk_size` when None.
    node_plugin_args : dict, optional
        ``plugin_args`` of the training and attribution nodes only (see
        :func:`init_group_training_wf`).
    num_threads : int, default=1
        PyTorch threads per training/attribution node (and the ``n_procs`` MultiProc reserves
        for it). The result equals ``run_ensemble``'s exactly when that runs with this many
        threads; PyTorch's CPU arithmetic depends on the thread count in the last bits.

    Returns
    -------
    :class:`xaibids.learning.ensemble.EnsembleResult`
    """
    from xaibids.learning.dataset import TimeseriesDataset
    from xaibids.learning.ensemble import EnsembleConfig, dataset_hash

    if not isinstance(dataset, TimeseriesDataset):
        raise TypeError("run_group_ensemble needs a TimeseriesDataset (see assemble_dataset).")
    if not isinstance(ens_config, EnsembleConfig):
        raise TypeError("run_group_ensemble needs an EnsembleConfig.")
    plugin_args = execution_plugin_args(plugin, plugin_args)
    if chunk_size is None:
        chunk_size = default_chunk_size(ens_config.n_models, ens_config.n_folds, plugin, plugin_args)
    work_dir = Path(work_dir).absolute()
    checkpoint_dir = Path(checkpoint_dir).absolute()
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    own_dir = work_dir / "group_training"
    dataset_file = own_dir / f"dataset-{dataset_hash(dataset)[:16]}.npz"
    if not dataset_file.exists():  # named by its content: an existing file is this dataset
        save_dataset(dataset, dataset_file)
    workflow = init_group_training_wf(dataset_file, ens_config, checkpoint_dir, chunk_size,
                                      node_plugin_args=node_plugin_args, num_threads=num_threads)
    workflow.base_dir = str(work_dir)
    workflow.config["execution"].update({
        "crashdump_dir": str(own_dir / "crash"), "crashfile_format": "txt",
        "hash_method": "content",
    })
    set_poll_interval(workflow, plugin)
    n_chunks = len(model_chunks(ens_config.n_models, chunk_size))
    LOGGER.info(
        "Training %d fold(s) x %d model(s) as %d training node(s) of up to %d model(s) and %d "
        "attribution node(s) with the Nipype %s plugin%s.", ens_config.n_folds,
        ens_config.n_models, ens_config.n_folds * n_chunks, chunk_size, ens_config.n_folds, plugin,
        f" (training/attribution nodes: {node_plugin_args})" if node_plugin_args else "")
    try:
        graph = workflow.run(plugin=plugin, plugin_args=plugin_args)
    except RuntimeError as err:
        crash_files = sorted((own_dir / "crash").glob("crash-*"))
        messages = sorted({crash_message(path) for path in crash_files} - {""})
        raise XaibidsError(
            f"The group training graph failed: {'; '.join(messages) or err}. The tracebacks are "
            f"in the crash file(s) in {own_dir / 'crash'}. Finished models stay checkpointed in "
            f"{checkpoint_dir}, so a rerun resumes.") from err
    merged = [node for node in graph.nodes() if node.name == "merge_folds"]
    if len(merged) != 1:
        raise RuntimeError("The group training graph ran without its merge_folds node.")
    result = load_pickle(merged[0].result.outputs.result_file)
    LOGGER.info("Group training finished: %d model(s) trained, %d reused from %s.",
                result.n_trained, result.n_reused, checkpoint_dir)
    return result
