"""The group level's training as a Nipype graph (folds x chunks of seeds, per-fold attribution).

The graph's merged result must equal :func:`run_ensemble`'s for the same inputs: every piece
is the code ``run_ensemble`` itself runs, so with the same number of PyTorch threads (the
nodes use one) the arrays are equal to the bit.
"""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from xaibids.interfaces.learning import (
    AttributeFold,
    TrainChunk,
    load_dataset,
    save_dataset,
)
from xaibids.learning import TimeseriesDataset, run_ensemble
from xaibids.learning.ensemble import (
    EnsembleConfig,
    dataset_hash,
    attribute_trained_fold,
    ensemble_folds,
    load_fold_models,
    merge_fold_results,
    train_fold_chunk,
)
from xaibids.workflows.group import (
    default_chunk_size,
    init_group_training_wf,
    model_chunks,
    run_group_ensemble,
)

GPU_ARGS = {"sbatch_args": "--partition=gpu --gres=gpu:1"}


def small_dataset(n=16, n_timepoints=8, n_features=5, seed=0):
    """Noise with a class-dependent offset in feature 1; one NaN to exercise the n/a path."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, n_timepoints, n_features)).astype(np.float32)
    X[:, :, 1] += np.where(y == 1, 1.0, -1.0)[:, None]
    X[3, 2, 4] = np.nan
    return TimeseriesDataset(
        X=X, y=y, classes=["control", "patient"], subjects=[f"sub-{i:02d}" for i in range(n)],
        sources=[f"sub-{i:02d}_timeseries.tsv" for i in range(n)],
        feature_names=[f"roi{j}" for j in range(n_features)],
    )


def small_config(**kw):
    values = {"model": "stdnn", "n_folds": 2, "n_models": 3, "epochs": 2, "batch_size": 4,
              "ig_steps": 4, "device": "cpu", "attribution_batch_size": 3,
              "baseline": ("zero", "mean"), "keep_model_maps": True,
              "model_kwargs": {"channels": (3, 3)}}
    values.update(kw)
    return EnsembleConfig(**values)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """run_ensemble's result, with one PyTorch thread like the graph's nodes."""
    dataset, config = small_dataset(), small_config()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = run_ensemble(dataset, config, tmp_path_factory.mktemp("reference"), progress=False)
    finally:
        torch.set_num_threads(previous)
    return dataset, config, result


def assert_same_result(a, b):
    for name in ("maps", "single_model_maps", "model_maps", "run_importance",
                 "mean_model_importance"):
        left, right = getattr(a, name), getattr(b, name)
        assert list(left) == list(right), name
        for key in left:
            np.testing.assert_array_equal(left[key], right[key], err_msg=f"{name}[{key}]")
    pd.testing.assert_frame_equal(a.performance, b.performance, check_exact=True)
    pd.testing.assert_frame_equal(a.stability, b.stability, check_exact=True)
    assert a.map_info == b.map_info
    assert a.attribution_params == b.attribution_params
    assert a.device == b.device
    assert len(a.folds) == len(b.folds)
    for (train_a, test_a), (train_b, test_b) in zip(a.folds, b.folds):
        np.testing.assert_array_equal(train_a, train_b)
        np.testing.assert_array_equal(test_a, test_b)


def test_dataset_file_round_trip(tmp_path):
    dataset = small_dataset()
    dataset.groups = np.repeat(np.array(["siteA", "siteB", "siteC", "siteD"], dtype=object), 4)
    path = save_dataset(dataset, tmp_path / "dataset.npz")
    loaded = load_dataset(path)
    assert dataset_hash(loaded) == dataset_hash(dataset)
    np.testing.assert_array_equal(loaded.X, dataset.X)  # NaN included
    assert loaded.X.dtype == np.float32 and loaded.y.dtype == np.int64
    assert (loaded.classes, loaded.subjects, loaded.sources, loaded.feature_names) == (
        dataset.classes, dataset.subjects, dataset.sources, dataset.feature_names)
    assert list(loaded.groups) == list(dataset.groups)
    for (a, b), (c, d) in zip(ensemble_folds(loaded, small_config()), ensemble_folds(dataset, small_config())):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)
    assert loaded.grid is None and loaded.affine is None
    # a volume dataset keeps its grid and affine (the ensemble scales volumes differently)
    volumes = TimeseriesDataset(X=np.zeros((4, 1, 24), np.float32), y=[0, 1, 0, 1],
                                classes=["a", "b"], subjects=list("wxyz"), sources=list("wxyz"),
                                feature_names=[str(i) for i in range(24)], grid=(2, 3, 4),
                                affine=np.diag([3.0, 3.0, 3.0, 1.0]))
    back = load_dataset(save_dataset(volumes, tmp_path / "volumes.npz"))
    assert back.grid == (2, 3, 4)
    np.testing.assert_array_equal(back.affine, volumes.affine)
    np.savez(tmp_path / "other.npz", X=np.zeros(1), meta=np.array("{}"))
    with pytest.raises(ValueError, match="not a dataset"):
        load_dataset(tmp_path / "other.npz")


def test_graph_has_fold_by_chunk_nodes_with_plugin_args(tmp_path):
    config = small_config()
    dataset_file = save_dataset(small_dataset(), tmp_path / "dataset.npz")
    wf = init_group_training_wf(dataset_file, config, tmp_path / "checkpoints", chunk_size=2,
                                node_plugin_args=GPU_ARGS, num_threads=2)
    nodes = {node.name: node for node in wf._get_all_nodes()}
    train = sorted(n for n, node in nodes.items() if isinstance(node.interface, TrainChunk))
    attribute = sorted(n for n, node in nodes.items() if isinstance(node.interface, AttributeFold))
    assert train == ["train_fold1_chunk1", "train_fold1_chunk2", "train_fold2_chunk1", "train_fold2_chunk2"]
    assert attribute == ["attribute_fold1", "attribute_fold2"]
    assert [nodes[n].inputs.indices for n in train] == [[0, 1], [2], [0, 1], [2]]
    assert [nodes[n].inputs.fold for n in train] == [1, 1, 2, 2]
    for name in train + attribute:
        assert nodes[name].plugin_args == GPU_ARGS
        assert nodes[name].n_procs == 2 and nodes[name].inputs.num_threads == 2
        assert nodes[name].inputs.use_gpu is False  # device="cpu"
    for name in ("merge_folds", "gather_folds", "gather_training", "fold1_reports"):
        assert nodes[name].plugin_args == {}  # the rest stays on the global (CPU) settings
    graph = wf._graph
    assert {u.name for u, _ in graph.in_edges(nodes["fold1_reports"])} == {"train_fold1_chunk1", "train_fold1_chunk2"}
    assert {u.name for u, _ in graph.in_edges(nodes["attribute_fold2"])} == {"fold2_reports"}
    assert "ensemble of 3 stdnn models" in wf.__desc__
    # plugin_args are per node: changing one node's dict leaves the others alone
    nodes["train_fold1_chunk1"].plugin_args["sbatch_args"] += " --time=1:00:00"
    assert nodes["train_fold2_chunk1"].plugin_args == GPU_ARGS
    assert model_chunks(5, 2) == [[0, 1], [2, 3], [4]]
    with pytest.raises(ValueError, match="chunk_size"):
        model_chunks(5, 0)


def test_default_chunk_size():
    assert default_chunk_size(10, 5, "Linear") == 10
    assert default_chunk_size(10, 5, "MultiProc", {"n_procs": 2}) == 10  # folds fill the procs
    assert default_chunk_size(10, 2, "MultiProc", {"n_procs": 8}) == 3  # 4 chunks per fold
    assert default_chunk_size(300, 10, "SLURM") == 150
    assert default_chunk_size(1, 10, "SLURM") == 1


@pytest.mark.parametrize("plugin, plugin_args, chunk_size", [
    ("Linear", None, 2),
    ("MultiProc", {"n_procs": 2, "raise_insufficient": False}, 1),
])
def test_graph_result_equals_run_ensemble_and_reuses_checkpoints(reference, tmp_path, plugin,
                                                                  plugin_args, chunk_size):
    dataset, config, expected = reference
    threads = torch.get_num_threads()
    checkpoints = tmp_path / "checkpoints"
    first = run_group_ensemble(dataset, config, checkpoints, tmp_path / "work", plugin=plugin,
                               plugin_args=plugin_args, chunk_size=chunk_size,
                               node_plugin_args=GPU_ARGS)
    assert torch.get_num_threads() == threads  # the Linear plugin runs nodes in this process
    assert (first.n_trained, first.n_reused) == (6, 0)
    assert_same_result(first, expected)
    assert len(list(checkpoints.glob("fold-*/model-*.json"))) == 6

    fold_file = next((tmp_path / "work").glob("group_training_wf/attribute_fold1/fold_result.pkl"))
    stamp = fold_file.stat().st_mtime_ns
    again = run_group_ensemble(dataset, config, checkpoints, tmp_path / "work", plugin=plugin,
                               plugin_args=plugin_args, chunk_size=chunk_size)
    assert (again.n_trained, again.n_reused) == (0, config.n_folds * config.n_models)
    assert_same_result(again, expected)
    assert fold_file.stat().st_mtime_ns == stamp  # same weights: the attribution stays cached

    if plugin == "Linear":  # a lost checkpoint is retrained (the same model) by its chunk only
        next(checkpoints.glob("fold-2/model-*.json")).unlink()
        third = run_group_ensemble(dataset, config, checkpoints, tmp_path / "work", plugin=plugin,
                                   plugin_args=plugin_args, chunk_size=chunk_size)
        assert (third.n_trained, third.n_reused) == (1, 5)
        assert_same_result(third, expected)
    assert not list((tmp_path / "work" / "group_training").glob("crash/*"))


def test_pieces_share_checkpoints_with_run_ensemble(reference, tmp_path):
    dataset, config, expected = reference
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        records = train_fold_chunk(dataset, config, tmp_path, fold=2, indices=[2, 0])
        assert [r["index"] for r in records] == [2, 0] and all(r["trained"] for r in records)
        with pytest.raises(FileNotFoundError, match="model 1"):
            attribute_trained_fold(dataset, config, tmp_path, fold=2)
        # run_ensemble finds the chunk's models (same fingerprints) and trains the rest
        result = run_ensemble(dataset, config, tmp_path, progress=False)
        assert (result.n_trained, result.n_reused) == (4, 2)
        assert_same_result(result, expected)
        again = train_fold_chunk(dataset, config, tmp_path, fold=2, indices=[2, 0])
        assert not any(r["trained"] for r in again)
        assert [r["weights_sha256"] for r in again] == [r["weights_sha256"] for r in records]
        folds = [attribute_trained_fold(dataset, config, tmp_path, fold=k) for k in (2, 1)]
    finally:
        torch.set_num_threads(previous)
    merged = merge_fold_results(dataset, config, folds, n_trained=0, n_reused=6)
    assert_same_result(merged, expected)
    models, X_test, y_test, _ = load_fold_models(dataset, config, tmp_path, fold=2)
    assert len(models) == 3 and len(X_test) == len(y_test) == len(expected.folds[1][1])
    with pytest.raises(ValueError, match="one result per fold"):
        merge_fold_results(dataset, config, folds[:1])
    with pytest.raises(ValueError, match="indices"):
        train_fold_chunk(dataset, config, tmp_path, fold=1, indices=[3])
    with pytest.raises(ValueError, match="fold must be"):
        train_fold_chunk(dataset, config, tmp_path, fold=3)
    report = json.loads(json.dumps(records))  # plain JSON, as TrainChunk writes it
    assert {"fold", "index", "seed", "fingerprint", "weights_sha256"} <= set(report[0])


FORK_AFTER_THREADS = """
import sys
import torch
from tests.test_workflows_group import small_config, small_dataset
from xaibids.workflows.group import run_group_ensemble

# PyTorch's OpenMP pool running in this process, as after an in-process group level
torch.set_num_threads(2)
x = torch.randn(1000, 1000)
for _ in range(5):
    (x @ x).sum()
plugin_args = {"n_procs": 2}
if len(sys.argv) > 3:
    plugin_args["mp_context"] = sys.argv[3]
result = run_group_ensemble(small_dataset(), small_config(), sys.argv[1], sys.argv[2],
                            plugin="MultiProc", plugin_args=plugin_args, num_threads=2)
print("trained", result.n_trained)
"""


def test_multiproc_after_pytorch_threads_does_not_deadlock(tmp_path):
    """MultiProc workers start from a forkserver: forked from a process whose OpenMP pool runs,
    they hung at their first PyTorch operation (a CI run once stalled so)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", FORK_AFTER_THREADS, str(tmp_path / "ckpt"),
                           str(tmp_path / "work")], cwd=root, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trained 6" in proc.stdout


@pytest.mark.parametrize("plugin, seconds", [("MultiProc", 0.2), ("Linear", 0.2), ("SLURM", 2)])
def test_local_plugins_poll_their_workers_often(plugin, seconds):
    """Local plugins poll every 0.2 s (Nipype's 2 s was most of the participant level's cost per
    run); cluster plugins keep Nipype's default, since each poll runs squeue."""
    from nipype.pipeline import engine as pe

    from xaibids.workflows import set_poll_interval

    workflow = pe.Workflow(name="w")
    set_poll_interval(workflow, plugin)
    assert float(workflow.config["execution"]["poll_sleep_duration"]) == seconds
