"""The CUDA path against the CPU (issue 10, item 5): run on a GPU machine by
``benchmarks/gpu_check.sh`` (see DEVELOPERS.md); skipped where PyTorch sees no GPU.

``XAIBIDS_TEST_DEVICE=cpu`` runs the same comparisons with the CPU on both sides, which checks
the tests themselves on a machine without a GPU.
"""

import os

import numpy as np
import pytest
import torch

from xaibids.attribution.ig import adaptive_integrated_gradients
from xaibids.learning.ensemble import attribute_fold
from xaibids.learning.training import train_model, train_models_batched
from xaibids.models import build_model

DEVICE = os.environ.get("XAIBIDS_TEST_DEVICE", "cuda")

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                       reason="PyTorch sees no CUDA device"),
]


def _data(seed=0, n=12, n_timepoints=20, n_features=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_timepoints, n_features)).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.int64)
    X[y == 1, :, 0] += 0.5
    return X, y


def _models(name, n_models, n_timepoints=20, n_features=6, **kwargs):
    models = []
    for seed in range(n_models):
        torch.manual_seed(seed)
        models.append(build_model(name, n_features=n_features, n_timepoints=n_timepoints,
                                  n_classes=2, **kwargs).eval())
    return models


@pytest.mark.parametrize("name, kwargs", [("stdnn", {"channels": (4, 4)}), ("lstm-attn", {})])
@pytest.mark.parametrize("n_steps", [16, "adaptive"])
def test_attribute_fold_on_the_gpu_matches_the_cpu(name, kwargs, n_steps):
    """Streamed IG and stabilization give the CPU's maps and choices on the GPU (cuDNN is off
    there for the LSTM's backward pass)."""
    X, y = _data()
    params = {"ig": {"n_steps": n_steps, "completeness_tolerance": 0.001}}
    runs = {}
    for device in ("cpu", DEVICE):
        models = _models(name, 3, **kwargs)
        batches = list(attribute_fold(models, X, y, batch_size=5, device=device,
                                      method_params=params, how="closest"))
        runs[device] = (np.concatenate([b["maps"]["ig"] for b in batches]),
                        [s for b in batches for s in b["selected"]["ig"]])
    (cpu_maps, cpu_selected), (gpu_maps, gpu_selected) = runs["cpu"], runs[DEVICE]
    assert cpu_selected == gpu_selected
    np.testing.assert_allclose(gpu_maps, cpu_maps, rtol=1e-3, atol=1e-4 * np.abs(cpu_maps).max())


def test_adaptive_ig_on_the_gpu_reaches_the_tolerance_and_the_cpu_maps():
    """The panels may split differently where float sums differ, but the GPU's maps meet the
    tolerance and agree with the CPU's."""
    X, y = _data(n=16)
    model = _models("lstm-attn", 1)[0]
    cpu = adaptive_integrated_gradients(model, torch.as_tensor(X), torch.as_tensor(y),
                                        tolerance=0.002)
    gpu = adaptive_integrated_gradients(model.to(DEVICE), torch.as_tensor(X, device=DEVICE),
                                        torch.as_tensor(y, device=DEVICE), tolerance=0.002)
    assert gpu.converged and gpu.completeness_error <= 0.002
    assert gpu.attributions.device.type == torch.device(DEVICE).type
    a, b = cpu.attributions.flatten(1), gpu.attributions.cpu().flatten(1)
    correlation = torch.nn.functional.cosine_similarity(a - a.mean(1, keepdim=True),
                                                        b - b.mean(1, keepdim=True))
    assert float(correlation.min()) > 0.9999


@pytest.mark.parametrize("name, kwargs", [("stdnn", {"channels": (4, 4)}), ("linear", {})])
def test_batched_training_on_the_gpu_equals_one_by_one(name, kwargs):
    """The vmapped ensemble (``--batched-training``, ``auto`` on CUDA) trains each model as
    one-by-one training does on the same device, early stopping included."""
    X, y = _data(n=80)
    fit, val = slice(0, 60), slice(60, 80)
    seeds = [3, 7, 11]
    settings = dict(epochs=20, batch_size=16, learning_rate=3e-3, weight_decay=0.01, patience=4,
                    device=DEVICE)
    batched = train_models_batched(name, kwargs, X[fit], y[fit], X[val], y[val], 2, seeds,
                                   **settings)
    for seed, (state, info) in zip(seeds, batched):
        ref_state, ref_info = train_model(name, kwargs, X[fit], y[fit], X[val], y[val], 2, seed,
                                          **settings)
        for key in ref_state:
            torch.testing.assert_close(state[key].cpu(), ref_state[key].cpu(), rtol=1e-3, atol=1e-4)
        assert info["best_epoch"] == ref_info["best_epoch"]
