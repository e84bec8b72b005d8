"""Tests of the seeded ensemble: ground-truth recovery, stability, checkpoints, streaming."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from xaibids.learning import EnsembleConfig, TimeseriesDataset, attribute_fold, model_seed, run_ensemble
from xaibids.learning import training
from xaibids.models import build_model
from xaibids.stats import SelectionRule, group_importance

SIGNAL = (3, 11, 25)




def toy_dataset(n=40, n_timepoints=50, n_features=30, signal=SIGNAL, amplitude=1.0, seed=0):
    """Gaussian noise; in the ``signal`` features a slow class-dependent oscillation.

    Half a period of a sine over the run, positive for class 1 and negative for class 0, is
    added to three of the features; the others carry no class information.
    """
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    X = rng.normal(size=(n, n_timepoints, n_features))
    wave = np.sin(np.pi * np.arange(n_timepoints) / (n_timepoints - 1))
    X[:, :, list(signal)] += amplitude * np.where(y == 1, 1.0, -1.0)[:, None, None] * wave[None, :, None]
    return TimeseriesDataset(
        X=X.astype(np.float32), y=y, classes=["control", "patient"],
        subjects=[f"sub-{i:02d}" for i in range(n)], sources=[f"sub-{i:02d}.tsv" for i in range(n)],
        feature_names=[f"roi-{j}" for j in range(n_features)], groups=None,
    )


GROUND_TRUTH_CONFIGS = {
    "linear": dict(epochs=100, batch_size=32, learning_rate=3e-3, weight_decay=1.0, val_fraction=0.0),
    "stdnn": dict(epochs=30, batch_size=8, learning_rate=1e-2, weight_decay=0.1, patience=100,
                  model_kwargs={"channels": (8, 8)}),
    "lstm-attn": dict(epochs=30, batch_size=8, learning_rate=1e-2, weight_decay=1e-2, patience=100,
                      model_kwargs={"hidden_size": 8, "attention_size": 8}),
}


@pytest.mark.parametrize("model", ["linear", "stdnn", "lstm-attn"])
def test_stabilized_maps_select_exactly_the_signal_features(model, tmp_path):
    """F1 = 1 at the 0.5 threshold (Strock et al. 2025) for stabilized IG maps (Lewis et al. 2023 §2.4)."""
    dataset = toy_dataset()
    config = EnsembleConfig(model=model, n_folds=3, n_models=3, ig_steps=16, device="cpu",
                            **GROUND_TRUTH_CONFIGS[model])
    result = run_ensemble(dataset, config, tmp_path, progress=False)
    ensemble = result.performance[result.performance.model == "ensemble"]
    assert (ensemble.accuracy >= 0.9).all()
    table = group_importance(result.maps["ig"], dataset.y, dataset.classes, dataset.feature_names,
                             selection=SelectionRule("fixed"))
    selected = set(np.flatnonzero(table.selected.to_numpy()))
    truth = set(SIGNAL)
    tp = len(selected & truth)
    f1 = 2 * tp / (len(selected) + len(truth))
    assert f1 == 1.0, table.sort_values("importance_norm", ascending=False).head(6)
    maps = result.maps["ig"]
    assert maps.shape == dataset.X.shape and np.isfinite(maps).all() and (maps >= 0).all()
    np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-4)


def _pearson_per_sample(a, b):
    a = a.reshape(len(a), -1) - a.reshape(len(a), -1).mean(axis=1, keepdims=True)
    b = b.reshape(len(b), -1) - b.reshape(len(b), -1).mean(axis=1, keepdims=True)
    return (a * b).sum(axis=1) / np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))


def test_stabilization_makes_independent_ensembles_agree(tmp_path):
    """Lewis et al. 2023 §2.4: single-model maps vary with the initialization, stabilized maps less.

    Two ensembles with disjoint seed sets (random_seed 0 and 1) of deliberately unstable models
    (two epochs of training) explain the same samples. Their selected maps correlate more with
    each other than the single-model maps of the two ensembles do (averaged over all pairs of a
    model of one ensemble and a model of the other).
    """
    dataset = toy_dataset(amplitude=0.5)
    n_models = 7
    results = []
    for random_seed in (0, 1):
        config = EnsembleConfig(model="stdnn", n_folds=3, n_models=n_models, epochs=2, batch_size=8,
                                learning_rate=1e-2, patience=100, ig_steps=8, device="cpu",
                                random_seed=random_seed, model_kwargs={"channels": (8, 8)},
                                keep_model_maps=True)
        results.append(run_ensemble(dataset, config, tmp_path / str(random_seed), progress=False))
    seeds = [set(sum((info["model_seeds"] for info in r.map_info), [])) for r in results]
    assert not seeds[0] & seeds[1]
    a, b = results
    assert a.model_maps["ig"].shape == (n_models,) + dataset.X.shape
    np.testing.assert_array_equal(a.model_maps["ig"][0], a.single_model_maps["ig"])
    stabilized = _pearson_per_sample(a.maps["ig"], b.maps["ig"])
    single = np.mean([_pearson_per_sample(a.model_maps["ig"][i], b.model_maps["ig"][j])
                      for i in range(n_models) for j in range(n_models)], axis=0)
    assert stabilized.mean() > single.mean() + 0.04, (stabilized.mean(), single.mean())
    assert np.mean(stabilized > single) > 0.65


def tiny_config(**kw):
    defaults = dict(model="linear", n_folds=2, n_models=2, epochs=3, batch_size=8, ig_steps=4,
                    device="cpu", attribution_batch_size=3)
    defaults.update(kw)
    return EnsembleConfig(**defaults)


def test_rerun_reuses_checkpoints(tmp_path, monkeypatch):
    dataset = toy_dataset(n=12, n_timepoints=6, n_features=4, signal=(0,))
    config = tiny_config()
    calls = []
    real_train = training.train_model

    def counting_train(*args, **kwargs):
        calls.append(kwargs["seed"])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(training, "train_model", counting_train)
    first = run_ensemble(dataset, config, tmp_path, progress=False)
    assert len(calls) == 4 and first.n_trained == 4 and first.n_reused == 0
    checkpoints = sorted(tmp_path.glob("fold-*/model-*.pt"))
    assert len(checkpoints) == 4
    assert [p.parent.name for p in checkpoints].count("fold-1") == 2
    info = json.loads(checkpoints[0].with_suffix(".json").read_text())
    assert {"val_loss", "fold", "seed", "fingerprint"} <= set(info)
    assert not list(tmp_path.glob("fold-*/*.tmp"))

    calls.clear()
    checkpoints[1].unlink()
    second = run_ensemble(dataset, config, tmp_path, progress=False)
    assert len(calls) == 1 and second.n_trained == 1 and second.n_reused == 3
    np.testing.assert_array_equal(first.maps["ig"], second.maps["ig"])  # same model retrained
    pd.testing.assert_frame_equal(first.performance, second.performance)

    calls.clear()  # an interrupted save (weights without sidecar) is retrained
    checkpoints[2].with_suffix(".json").unlink()
    run_ensemble(dataset, config, tmp_path, progress=False)
    assert len(calls) == 1

    calls.clear()  # other training settings make all checkpoints stale
    run_ensemble(dataset, tiny_config(epochs=4), tmp_path, progress=False)
    assert len(calls) == 4


def test_result_tables(tmp_path):
    dataset = toy_dataset(n=12, n_timepoints=6, n_features=4, signal=(0,))
    result = run_ensemble(dataset, tiny_config(n_models=3), tmp_path, progress=False)
    perf = result.performance
    assert list(perf.columns) == ["fold", "model", "n_models", "accuracy", "balanced_accuracy", "loss"]
    assert len(perf) == 2 * (3 + 1)
    assert (perf[perf.model == "ensemble"].n_models == 3).all()
    assert set(perf[perf.model != "ensemble"].model) == {model_seed(0, k, m) for k in (1, 2) for m in range(3)}
    assert perf[["accuracy", "balanced_accuracy"]].stack().between(0, 1).all()
    assert len(result.map_info) == 12
    for i, info in enumerate(result.map_info):
        fold = info["fold"]
        assert i in result.folds[fold - 1][1]  # out-of-fold
        assert info["model_seeds"] == [model_seed(0, fold, m) for m in range(3)]
        index = info["selected_model_index"]["ig"]
        assert info["selected_model_seed"]["ig"] == info["model_seeds"][index]
        assert info["true_label"] == dataset.classes[dataset.y[i]]
        assert info["prediction"] in dataset.classes
        assert info["probability"] == pytest.approx(max(info["probabilities"].values()))
        assert len(info["model_losses"]) == 3
    mean_cfg = run_ensemble(dataset, tiny_config(n_models=3, stabilize="mean", positive="relu"),
                            tmp_path, progress=False)
    assert mean_cfg.map_info[0]["selected_model_index"] == {"ig": None}
    assert mean_cfg.n_trained == 0  # stabilization settings do not invalidate checkpoints


def test_training_is_reproducible():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(10, 5, 3)).astype(np.float32), np.arange(10) % 2
    kw = dict(model_name="stdnn", model_kwargs={"channels": (3, 3)}, X_fit=X[:8], y_fit=y[:8],
              X_val=X[8:], y_val=y[8:], n_classes=2, epochs=3, batch_size=4)
    a, info_a = training.train_model(seed=5, **kw)
    b, info_b = training.train_model(seed=5, **kw)
    c, _ = training.train_model(seed=6, **kw)
    assert info_a == info_b
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_streaming_batch_size_does_not_change_maps():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(7, 6, 4)).astype(np.float32), np.arange(7) % 2
    models = []
    for seed in range(3):
        torch.manual_seed(seed)
        models.append(build_model("lstm-attn", 4, 6, 2, hidden_size=3, attention_size=3))
    out = {}
    for batch_size in (1, 3, 16):
        batches = list(attribute_fold(models, X, y, n_steps=5, batch_size=batch_size))
        assert len(batches) == -(-7 // batch_size)
        out[batch_size] = np.concatenate([b["maps"]["ig"] for b in batches])
    np.testing.assert_allclose(out[1], out[3], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out[1], out[16], rtol=1e-5, atol=1e-7)


def test_missing_values_and_repeated_subjects(tmp_path):
    dataset = toy_dataset(n=12, n_timepoints=6, n_features=4, signal=(0,))
    dataset.X[0, 2, 1] = np.nan
    dataset.X[:, :, 3] = np.nan  # a feature absent everywhere
    dataset.subjects = [f"sub-{i // 2:02d}" for i in range(12)]  # two runs per subject
    dataset.y = np.repeat([0, 1], 6)
    result = run_ensemble(dataset, tiny_config(), tmp_path, progress=False)
    assert np.isfinite(result.maps["ig"]).all()
    subjects = np.array(dataset.subjects)
    for train, test in result.folds:
        assert not set(subjects[train]) & set(subjects[test])


def test_config_validation():
    with pytest.raises(ValueError, match="EnsembleConfig.model must be one of region-cnn, lstm-attn, stdnn, linear, connectome, cnn3d"):
        EnsembleConfig(model="cnn2d")
    with pytest.raises(ValueError, match="Unknown attribution method"):
        EnsembleConfig(attribution=("ig", "shap"))
    with pytest.raises(ValueError, match="n_folds must be an integer >= 2"):
        EnsembleConfig(n_folds=1)
    with pytest.raises(ValueError, match="val_fraction"):
        EnsembleConfig(val_fraction=1.0)
    with pytest.raises(ValueError, match="stabilize must be one of"):
        EnsembleConfig(stabilize="best")
    assert EnsembleConfig(attribution="ig").attribution == ("ig",)


def test_auto_ig_steps_choose_per_fold_and_equal_the_fixed_count(tmp_path):
    """ig_steps=0: each fold's step count is the fewest converged one; each fold's maps equal
    a run with that count fixed, and the provenance names the count and the tolerance."""
    dataset = toy_dataset(n=16, n_timepoints=10, n_features=6, signal=(1,))
    kwargs = {"model": "stdnn", "model_kwargs": {"channels": (4, 4)}}
    auto = run_ensemble(dataset, tiny_config(ig_steps=0, ig_tolerance=0.01, **kwargs),
                        tmp_path / "ckpt", progress=False)
    table = auto.ig_convergence
    assert list(table.columns) == ["fold", "baseline", "n_steps", "completeness_error", "chosen",
                                   "mean_points"]
    assert (table["mean_points"] == table["n_steps"]).all()
    chosen = table[table["chosen"]].set_index("fold")
    assert sorted(chosen.index) == [1, 2]
    for fold, row in chosen.iterrows():
        tried = table[table["fold"] == fold]
        assert row["completeness_error"] <= 0.01
        assert (tried[tried["n_steps"] < row["n_steps"]]["completeness_error"] > 0.01).all()
    assert [info["ig_steps"] for info in auto.map_info] == [
        chosen.loc[info["fold"], "n_steps"] for info in auto.map_info]
    assert auto.attribution_params["ig"]["params"]["n_steps"] == "auto"
    assert auto.attribution_params["ig"]["params"]["completeness_tolerance"] == 0.01
    for steps in set(chosen["n_steps"]):
        fixed = run_ensemble(dataset, tiny_config(ig_steps=int(steps), **kwargs),
                             tmp_path / "ckpt", progress=False)  # the same checkpoints
        assert fixed.ig_convergence.empty
        rows = [i for i, info in enumerate(auto.map_info) if info["ig_steps"] == steps]
        np.testing.assert_array_equal(auto.maps["ig"][rows], fixed.maps["ig"][rows])
    with pytest.raises(ValueError, match="ig_tolerance must be in"):
        tiny_config(ig_steps=0, ig_tolerance=1.5)


def test_adaptive_ig_steps_record_the_points_and_error_of_every_fold(tmp_path):
    """ig_steps="adaptive": each fold's error over all its models and samples is within the
    tolerance; its mean points and each sample's points are recorded; the maps equal the
    adaptive IG of the fold's models (one model, no stabilization to blur the check)."""
    from xaibids.attribution.ig import adaptive_integrated_gradients
    from xaibids.learning.ensemble import load_fold_models

    dataset = toy_dataset(n=16, n_timepoints=10, n_features=6, signal=(1,))
    config = tiny_config(ig_steps="adaptive", ig_tolerance=0.002, n_models=1, stabilize="none",
                         positive="none", baseline=("zero", "mean"), model="lstm-attn")
    result = run_ensemble(dataset, config, tmp_path / "ckpt", progress=False)
    table = result.ig_convergence
    assert sorted(zip(table["fold"], table["baseline"])) == [(1, "mean"), (1, "zero"),
                                                             (2, "mean"), (2, "zero")]
    assert (table["n_steps"] == "adaptive").all() and table["chosen"].all()
    assert (table["completeness_error"] <= 0.002).all() and (table["mean_points"] >= 8).all()
    params = result.attribution_params["igZero"]["params"]
    assert params["n_steps"] == "adaptive" and params["completeness_tolerance"] == 0.002
    assert set(result.map_info[0]["ig_points"]) == {"igZero", "igMean"}
    models, X_test, y_test, _ = load_fold_models(dataset, config, tmp_path / "ckpt", fold=1)
    test = result.folds[0][1]
    expected = adaptive_integrated_gradients(
        models[0].eval(), torch.as_tensor(X_test[:config.attribution_batch_size], dtype=torch.float32),
        torch.as_tensor(y_test[:config.attribution_batch_size]), tolerance=0.002)
    first = test[:config.attribution_batch_size]
    for got, want in zip(result.maps["igZero"][first], expected.attributions.numpy()):
        assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 1 - 1e-6  # equal up to the scaling
    assert [result.map_info[i]["ig_points"]["igZero"] for i in first] == expected.points.tolist()
    with pytest.raises(ValueError, match="cannot use ig_method 'riemann_left'"):
        tiny_config(ig_steps="adaptive", ig_method="riemann_left")
    with pytest.raises(ValueError, match="ig_steps must be an integer >= 0 or 'adaptive'"):
        tiny_config(ig_steps="adaptively")


def test_choose_ensemble_size_doubles_until_the_maps_stop_changing(tmp_path):
    from xaibids.learning.ensemble import choose_ensemble_size

    dataset = toy_dataset(n=24, n_timepoints=10, n_features=6, signal=(1,), amplitude=2.0)
    config = tiny_config(model="stdnn", n_models=8, epochs=5, model_kwargs={"channels": (4, 4)})
    loose, table = choose_ensemble_size(dataset, config, tmp_path / "ckpt", threshold=0.01)
    # 2 is chosen once 2 vs 4 *and* 4 vs 8 agree: one agreement is not enough
    assert loose == 2 and list(table["n_models"]) == [2, 4]
    assert table["chosen"].tolist() == [True, False]
    assert table["compared_with"].tolist() == [4, 8] and (table["correlation"] >= 0.01).all()
    strict, table = choose_ensemble_size(dataset, config, tmp_path / "ckpt", threshold=0.999999)
    assert strict == 8  # never stable at that threshold: the maximum
    assert list(table["n_models"]) == [2, 4, 8] and table["chosen"].tolist() == [False, False, True]
    assert (table["correlation"].iloc[:2] < 0.999999).all()
    # the sizes' models are the run's checkpoints: the main run reuses them all
    result = run_ensemble(dataset, config, tmp_path / "ckpt", progress=False)
    assert result.n_reused == 8 and result.n_trained == 8  # fold 1 reused, fold 2 trained
    with pytest.raises(ValueError, match="threshold must be in"):
        choose_ensemble_size(dataset, config, tmp_path / "ckpt", threshold=1.0)


def test_choose_ensemble_size_needs_two_agreements_in_a_row(tmp_path, monkeypatch):
    """A single agreement between small ensembles (here 2 vs 4) does not stop the doubling."""
    from xaibids.learning.ensemble import choose_ensemble_size, size

    scripted = iter([0.99, 0.50, 0.99, 0.99])  # 2v4, 4v8, 8v16, 16v32
    monkeypatch.setattr(size, "pearson_per_sample",
                        lambda a, b: np.full(len(a), next(scripted)))
    dataset = toy_dataset(n=16, n_timepoints=6, n_features=4, signal=(0,))
    n, table = choose_ensemble_size(dataset, tiny_config(n_models=32, epochs=1), tmp_path / "c",
                                    threshold=0.95)
    assert n == 8
    assert table["n_models"].tolist() == [2, 4, 8, 16]
    assert table["chosen"].tolist() == [False, False, True, False]


def test_choose_ensemble_size_compares_mean_maps_for_closest(tmp_path):
    """``closest`` keeps one model's map, which need not converge: the sizes are compared on
    the ensemble-mean maps the selection targets, i.e. exactly as with ``--stabilize mean``."""
    from dataclasses import replace

    from xaibids.attribution.reliability import pearson_per_sample
    from xaibids.learning.ensemble import choose_ensemble_size

    dataset = toy_dataset(n=24, n_timepoints=10, n_features=6, signal=(1,), amplitude=2.0)
    closest = tiny_config(model="stdnn", n_models=4, epochs=5, stabilize="closest",
                          model_kwargs={"channels": (4, 4)})
    _, by_closest = choose_ensemble_size(dataset, closest, tmp_path / "ckpt", threshold=0.999999)
    _, by_mean = choose_ensemble_size(dataset, replace(closest, stabilize="mean"),
                                      tmp_path / "ckpt", threshold=0.999999)
    assert by_closest["compared"].tolist() == ["mean"] * 2  # 2 vs 4, then the maximum
    np.testing.assert_allclose(by_closest["correlation"].iloc[0], by_mean["correlation"].iloc[0])
    # and that number is the correlation of the mean maps of 2 and 4 models, not of the
    # selected ones
    run2 = run_ensemble(dataset, replace(closest, n_models=2, stabilize="mean"),
                        tmp_path / "ckpt", progress=False)
    run4 = run_ensemble(dataset, replace(closest, stabilize="mean"), tmp_path / "ckpt",
                        progress=False)
    fold1 = run4.folds[0][1]
    r = np.nanmean(pearson_per_sample(run2.maps["ig"][fold1], run4.maps["ig"][fold1]))
    np.testing.assert_allclose(by_closest["correlation"].iloc[0], r, rtol=1e-5)


def test_mean_model_importance_is_the_models_mean_of_time_summed_maps(tmp_path):
    """What the contrast selection rule tests: each model's positive, sum-normalized map summed
    over time, averaged over the sample's ensemble."""
    dataset = toy_dataset()
    config = EnsembleConfig(model="linear", n_folds=2, n_models=3, ig_steps=8, device="cpu",
                            epochs=5, keep_model_maps=True)
    result = run_ensemble(dataset, config, tmp_path, progress=False)
    expected = result.model_maps["ig"].sum(axis=2).mean(axis=0)
    np.testing.assert_allclose(result.mean_model_importance["ig"], expected, rtol=1e-5)
    np.testing.assert_allclose(result.mean_model_importance["ig"].sum(axis=1), 1.0, rtol=1e-4)
