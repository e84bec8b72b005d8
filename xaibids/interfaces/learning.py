"""Nipype interfaces of the group level's ensemble: train a chunk, attribute a fold, merge.

Each interface wraps one step of :func:`xaibids.learning.ensemble.run_ensemble`
(:func:`~xaibids.learning.ensemble.train_fold_chunk`,
:func:`~xaibids.learning.ensemble.attribute_trained_fold`,
:func:`~xaibids.learning.ensemble.merge_fold_results`), so that
:func:`xaibids.workflows.group.init_group_training_wf` can spread the training over processes
or cluster jobs. The dataset travels as one ``.npz`` file (:func:`save_dataset`), the settings
as the plain dict of :func:`~xaibids.learning.ensemble.config_to_dict`, the models as the
checkpoints in the shared checkpoint folder.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from xaibids.fileio import atomic_write_bytes
from xaibids.threads import limited_threads

LOGGER = logging.getLogger("xaibids")

_DATASET_FORMAT = "xaibids-timeseries-dataset-1"


def save_dataset(dataset, path: str | os.PathLike) -> Path:
    """Write a :class:`~xaibids.learning.dataset.TimeseriesDataset` to one ``.npz`` file.

    No pickles: ``X`` (float32) and ``y`` (int64) as arrays, the names (classes, subjects,
    sources, feature names and the ``groups`` values, as strings; a volume dataset's grid and
    affine) as JSON. :func:`load_dataset`
    gives back a dataset with the same data hash, folds and checkpoint fingerprints. Written
    atomically (temporary file + rename).
    """
    path = Path(path)
    meta = {
        "format": _DATASET_FORMAT,
        "classes": [str(c) for c in dataset.classes],
        "subjects": [str(s) for s in dataset.subjects],
        "sources": [str(s) for s in dataset.sources],
        "feature_names": [str(f) for f in dataset.feature_names],
        "groups": None if dataset.groups is None else [str(g) for g in dataset.groups],
        "grid": None if dataset.grid is None else [int(v) for v in dataset.grid],
        "affine": None if dataset.affine is None else np.asarray(dataset.affine).tolist(),
    }
    arrays = {"X": np.ascontiguousarray(dataset.X, dtype=np.float32),
              "y": np.ascontiguousarray(dataset.y, dtype=np.int64),
              "meta": np.array(json.dumps(meta))}
    atomic_write_bytes(path, lambda handle: np.savez(handle, **arrays))
    return path


def load_dataset(path: str | os.PathLike):
    """Read a :class:`~xaibids.learning.dataset.TimeseriesDataset` written by :func:`save_dataset`."""
    from xaibids.learning.dataset import TimeseriesDataset

    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != _DATASET_FORMAT:
            raise ValueError(f"{path} is not a dataset written by xaibids.interfaces.learning.save_dataset.")
        groups = meta["groups"]
        return TimeseriesDataset(
            X=data["X"], y=data["y"], classes=meta["classes"], subjects=meta["subjects"],
            sources=meta["sources"], feature_names=meta["feature_names"],
            groups=None if groups is None else np.array(groups, dtype=object),
            grid=meta.get("grid"),
            affine=None if meta.get("affine") is None else np.array(meta["affine"]),
        )


def config_from_dict(values: dict):
    """The :class:`~xaibids.learning.ensemble.EnsembleConfig` of a
    :func:`~xaibids.learning.ensemble.config_to_dict` dict."""
    from xaibids.learning.ensemble import EnsembleConfig

    return EnsembleConfig(**values)


def save_pickle(obj, path: str | os.PathLike) -> Path:
    """Pickle ``obj`` to ``path`` atomically (results passed between nodes of one installation)."""
    path = Path(path)
    atomic_write_bytes(path, lambda handle: pickle.dump(obj, handle, protocol=pickle.HIGHEST_PROTOCOL))
    return path


def load_pickle(path: str | os.PathLike):
    """Read what :func:`save_pickle` wrote."""
    with open(path, "rb") as handle:
        return pickle.load(handle)  # only files this package wrote in its work folder


def _log_progress_here() -> None:
    """Show the ``xaibids`` logger's INFO messages (per model, per chunk) in this process.

    A node run in a cluster job (or a spawned worker) starts a fresh Python whose ``xaibids``
    logger has no handler, so the progress messages would be lost; they then go to stderr, i.e.
    to the job's log (``slurm-<id>.out`` in the node's folder for SLURM).
    """
    if not LOGGER.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)-7s | %(message)s", "%H:%M:%S"))
        LOGGER.addHandler(handler)
        if LOGGER.level == logging.NOTSET:
            LOGGER.setLevel(logging.INFO)


class _EnsembleInputSpec(BaseInterfaceInputSpec):
    # hash_files=False: the file name of save_dataset's output in run_group_ensemble carries
    # the data hash, and the downstream caches depend on the checkpoints' fingerprints anyway
    dataset_file = File(exists=True, mandatory=True, hash_files=False,
                        desc="dataset .npz written by save_dataset")
    config = traits.Dict(mandatory=True, desc="EnsembleConfig as a dict (config_to_dict)")
    checkpoint_dir = traits.Str(mandatory=True, desc="folder of the model checkpoints")
    # Nipype sets num_threads from the node's n_procs
    num_threads = traits.Int(1, usedefault=True,
                             desc="OpenMP/BLAS/PyTorch threads (0: leave them as they are)")
    use_gpu = traits.Bool(False, usedefault=True,
                          desc="node runs on a GPU (Nipype's MultiProc counts GPU slots)")


class _TrainChunkInputSpec(_EnsembleInputSpec):
    fold = traits.Int(mandatory=True, desc="1-based fold")
    indices = traits.List(traits.Int, mandatory=True, minlen=1, desc="0-based model indices")


class _TrainChunkOutputSpec(TraitedSpec):
    out_report = File(exists=True, desc="JSON: the chunk's models (seed, fingerprint, weights hash)")
    status = traits.Dict(desc="fold, indices, and the indices trained and reused in this run")


class TrainChunk(SimpleInterface):
    """Train (or find checkpointed) some of one fold's models
    (:func:`~xaibids.learning.ensemble.train_fold_chunk`).

    Always runs, even when its inputs are unchanged: it is cheap when the checkpoints exist
    (they are only checked), and the checkpoints are the truth, not Nipype's cache.
    ``out_report`` only names the models and their weights, so it is the same file content
    whether the models were trained now or before, and the fold's attribution stays cached
    while the weights are unchanged.
    """

    input_spec = _TrainChunkInputSpec
    output_spec = _TrainChunkOutputSpec
    _always_run = True

    def _run_interface(self, runtime):
        from xaibids.learning.ensemble import train_fold_chunk

        _log_progress_here()

        inputs = self.inputs
        config = config_from_dict(inputs.config)
        dataset = load_dataset(inputs.dataset_file)
        indices = [int(i) for i in inputs.indices]
        LOGGER.info("Fold %d/%d: training model(s) %d-%d of %d into %s.", inputs.fold,
                    config.n_folds, indices[0] + 1, indices[-1] + 1, config.n_models,
                    inputs.checkpoint_dir)
        with limited_threads(inputs.num_threads):
            records = train_fold_chunk(dataset, config, inputs.checkpoint_dir, inputs.fold, indices)
        trained = [r["index"] for r in records if r["trained"]]
        reused = [r["index"] for r in records if not r["trained"]]
        LOGGER.info("Fold %d/%d, models %d-%d: %d trained, %d reused (%.1f s).", inputs.fold,
                    config.n_folds, indices[0] + 1, indices[-1] + 1, len(trained), len(reused),
                    sum(r["seconds"] for r in records))
        report = [{k: r[k] for k in ("fold", "index", "seed", "fingerprint", "weights_sha256")}
                  for r in records]
        out = Path(runtime.cwd) / "chunk_models.json"
        out.write_text(json.dumps(report, indent=1, sort_keys=True))
        self._results["out_report"] = str(out)
        self._results["status"] = {"fold": int(inputs.fold), "indices": indices,
                                   "trained": trained, "reused": reused}
        return runtime


class _AttributeFoldInputSpec(_EnsembleInputSpec):
    fold = traits.Int(mandatory=True, desc="1-based fold")
    chunk_reports = InputMultiObject(File(exists=True), mandatory=True,
                                     desc="out_report of every TrainChunk of this fold")


class _AttributeFoldOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="pickled FoldResult")


class AttributeFold(SimpleInterface):
    """Attribute, stabilize and score one fold from its checkpointed models
    (:func:`~xaibids.learning.ensemble.attribute_trained_fold`)."""

    input_spec = _AttributeFoldInputSpec
    output_spec = _AttributeFoldOutputSpec

    def _run_interface(self, runtime):
        from xaibids.learning.ensemble import attribute_trained_fold

        _log_progress_here()

        inputs = self.inputs
        config = config_from_dict(inputs.config)
        done = sorted(r["index"] for path in inputs.chunk_reports for r in json.loads(Path(path).read_text())
                      if r["fold"] == inputs.fold)
        if done != list(range(config.n_models)):
            raise RuntimeError(f"Fold {inputs.fold}: the training chunks report models {done}, not "
                               f"0..{config.n_models - 1}.")
        dataset = load_dataset(inputs.dataset_file)
        LOGGER.info("Fold %d/%d: attributing with %d model(s).", inputs.fold, config.n_folds,
                    config.n_models)
        with limited_threads(inputs.num_threads):
            result = attribute_trained_fold(dataset, config, inputs.checkpoint_dir, inputs.fold)
        self._results["out_file"] = str(save_pickle(result, Path(runtime.cwd) / "fold_result.pkl"))
        return runtime


class _MergeFoldsInputSpec(BaseInterfaceInputSpec):
    dataset_file = File(exists=True, mandatory=True, hash_files=False,
                        desc="dataset .npz written by save_dataset")
    config = traits.Dict(mandatory=True, desc="EnsembleConfig as a dict (config_to_dict)")
    fold_results = InputMultiObject(File(exists=True), mandatory=True, desc="AttributeFold outputs")
    training = traits.List(traits.Dict, desc="TrainChunk status of every chunk (trained/reused counts)")


class _MergeFoldsOutputSpec(TraitedSpec):
    result_file = File(exists=True, desc="pickled EnsembleResult")
    n_trained = traits.Int(desc="models trained in this run")
    n_reused = traits.Int(desc="models reused from checkpoints")


class MergeFolds(SimpleInterface):
    """Combine the folds into the :class:`~xaibids.learning.ensemble.EnsembleResult`
    (:func:`~xaibids.learning.ensemble.merge_fold_results`)."""

    input_spec = _MergeFoldsInputSpec
    output_spec = _MergeFoldsOutputSpec

    def _run_interface(self, runtime):
        from xaibids.learning.ensemble import merge_fold_results

        inputs = self.inputs
        config = config_from_dict(inputs.config)
        dataset = load_dataset(inputs.dataset_file)
        n_trained = sum(len(s["trained"]) for s in inputs.training)
        n_reused = sum(len(s["reused"]) for s in inputs.training)
        result = merge_fold_results(dataset, config, [load_pickle(p) for p in inputs.fold_results],
                                    n_trained=n_trained, n_reused=n_reused)
        self._results["result_file"] = str(save_pickle(result, Path(runtime.cwd) / "ensemble_result.pkl"))
        self._results["n_trained"] = n_trained
        self._results["n_reused"] = n_reused
        return runtime
