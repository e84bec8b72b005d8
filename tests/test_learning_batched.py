"""Batched training of an ensemble (``batched_training``, issue 10): the models of a fold trained
as one vmapped network equal the models trained one by one, up to floating-point rounding."""

import json

import numpy as np
import pytest
import torch

from xaibids.learning import EnsembleConfig, TimeseriesDataset, run_ensemble, training
from xaibids.learning.training import train_model, train_models_batched


def _data(seed=1, n=80):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 20, 6)).astype(np.float32)
    y = rng.integers(0, 2, n)
    X[y == 1, :, 0] += 0.4
    return X, y


# region-cnn with its group lasso (the default) and without it, connectome with its ridge: the
# penalized models train through all 40 epochs here, so only the others show models stopping at
# different epochs
@pytest.mark.parametrize("name, kwargs, stops_differ", [
    ("region-cnn", {"filters": 2}, False), ("region-cnn", {"filters": 2, "sparsity": 0.0}, True),
    ("stdnn", {"channels": (4, 4)}, True), ("linear", {}, True), ("connectome", {}, False)])
@pytest.mark.parametrize("validation", [True, False], ids=["early-stopping", "all-epochs"])
def test_batched_models_equal_one_by_one_training(name, kwargs, stops_differ, validation):
    X, y = _data()
    fit, val = slice(0, 60), slice(60, 80) if validation else slice(0, 0)
    seeds = [3, 7, 11, 19]
    settings = dict(epochs=40 if validation else 6, batch_size=16, learning_rate=3e-3,
                    weight_decay=0.01, patience=4)
    batched = train_models_batched(name, kwargs, X[fit], y[fit], X[val], y[val], 2, seeds,
                                   **settings)
    stops = set()
    for seed, (state, info) in zip(seeds, batched):
        ref_state, ref_info = train_model(name, kwargs, X[fit], y[fit], X[val], y[val], 2, seed,
                                          **settings)
        assert set(state) == set(ref_state)
        for key in ref_state:
            torch.testing.assert_close(state[key], ref_state[key], rtol=1e-4, atol=1e-5)
        assert info["best_epoch"] == ref_info["best_epoch"]
        assert info["epochs_run"] == ref_info["epochs_run"]
        assert info["val_loss"] == pytest.approx(ref_info["val_loss"], rel=1e-5)
        stops.add(info["epochs_run"])
    if validation and stops_differ:  # each model stopped on its own validation loss
        assert len(stops) > 1


def test_batched_training_refuses_other_models():
    X, y = _data(n=10)
    with pytest.raises(ValueError, match="stdnn, linear"):
        train_models_batched("lstm-attn", {}, X, y, X[:0], y[:0], 2, [1, 2])
    with pytest.raises(ValueError, match="Batched training supports"):
        EnsembleConfig(model="lstm-attn", batched_training="on")
    with pytest.raises(ValueError, match="batched_training must be one of"):
        EnsembleConfig(batched_training="yes")


def test_run_ensemble_batched_equals_one_by_one(tmp_path, monkeypatch):
    """run_ensemble with batched_training='on' trains each fold's models in one call, writes
    the usual checkpoints (a rerun reuses them) and gives the maps of one-by-one training."""
    X, y = _data(seed=2, n=40)
    dataset = TimeseriesDataset(X=X, y=y, classes=["a", "b"],
                                subjects=[f"sub-{i:02d}" for i in range(40)],
                                sources=[f"sub-{i:02d}.tsv" for i in range(40)],
                                feature_names=[f"f{i}" for i in range(6)])
    settings = dict(model="stdnn", model_kwargs={"channels": (4, 4)}, n_folds=2, n_models=3,
                    epochs=8, batch_size=8, ig_steps=8, device="cpu", learning_rate=3e-3)
    calls = []
    real = training.train_models_batched

    def counting(*args, **kwargs):
        calls.append(len(kwargs["seeds"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_models_batched", counting)
    batched = run_ensemble(dataset, EnsembleConfig(**settings, batched_training="on"),
                           tmp_path / "on", progress=False)
    assert calls == [3, 3] and batched.n_trained == 6
    again = run_ensemble(dataset, EnsembleConfig(**settings, batched_training="on"),
                         tmp_path / "on", progress=False)
    assert calls == [3, 3] and again.n_reused == 6
    single = run_ensemble(dataset, EnsembleConfig(**settings, batched_training="off"),
                          tmp_path / "off", progress=False)
    np.testing.assert_allclose(batched.maps["ig"], single.maps["ig"], rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(batched.performance["loss"], single.performance["loss"],
                               rtol=1e-4)
    # auto trains one by one on the CPU: exactly the maps of 'off'
    auto = run_ensemble(dataset, EnsembleConfig(**settings), tmp_path / "auto", progress=False)
    assert calls == [3, 3]
    np.testing.assert_array_equal(auto.maps["ig"], single.maps["ig"])

    def fingerprints(folder):
        return {json.loads(p.read_text())["fingerprint"] for p in folder.glob("fold-1/*.json")}

    # checkpoints say how they were trained: 'auto' on the CPU is 'off', 'on' is not
    assert fingerprints(tmp_path / "auto") == fingerprints(tmp_path / "off")
    assert fingerprints(tmp_path / "on").isdisjoint(fingerprints(tmp_path / "off"))


@pytest.mark.parametrize("mode, model, said", [("on", "stdnn", True), ("off", "stdnn", False),
                                               ("auto", "stdnn", torch.cuda.is_available()),
                                               ("auto", "lstm-attn", False)])
def test_methods_text_says_when_a_fold_was_trained_together(mode, model, said):
    from xaibids.levels.group import ensemble_config, group_methods
    from xaibids.config import Config

    X, y = _data(n=8)
    subjects = [f"sub-{i}" for i in range(8)]
    dataset = TimeseriesDataset(X=X, y=y, classes=["a", "b"], subjects=subjects,
                                sources=subjects, feature_names=list("abcdef"))
    config = Config()
    config.learning.batched_training, config.learning.model = mode, model
    config.learning.device = "cpu"
    text = group_methods(config, ensemble_config(config, dataset, None), dataset, "timecourses")
    assert ("trained together as one vectorized network" in text) is said
