"""Tests of Integrated Gradients through Captum (seed 000 §2.3, seed 001 baselines)."""

import numpy as np
import pytest
import torch

from xaibids.attribution import METHODS, attribute, integrated_gradients, make_baseline
from xaibids.models import build_model


def test_ig_of_linear_model_is_the_target_weight_map():
    """Without input multiplication, IG of a linear model is its weight map (seed 000 §2.3)."""
    torch.manual_seed(0)
    model = build_model("linear", n_features=4, n_timepoints=6, n_classes=3).eval()
    x = torch.randn(5, 6, 4)
    target = torch.tensor([0, 1, 2, 1, 0])
    maps = integrated_gradients(model, x, target, n_steps=7)
    weights = model.linear.weight.detach().reshape(3, 6, 4)
    assert maps.shape == x.shape
    torch.testing.assert_close(maps, weights[target], rtol=1e-5, atol=1e-6)


def test_ig_matches_riemann_path_average_on_a_nonlinear_model():
    torch.manual_seed(1)
    model = build_model("stdnn", 3, 8, 2, channels=(4, 4), kernel_size=3).eval()
    x = torch.randn(2, 8, 3)
    target = torch.tensor([1, 0])
    maps = integrated_gradients(model, x, target, n_steps=200)
    # direct midpoint-rule path average of the gradient from the zero baseline to x
    alphas = (torch.arange(400) + 0.5) / 400
    path = (alphas[:, None, None, None] * x).reshape(-1, 8, 3).requires_grad_(True)
    model(path)[torch.arange(len(path)), target.repeat(len(alphas))].sum().backward()
    grads = path.grad.reshape(len(alphas), 2, 8, 3).mean(dim=0)
    torch.testing.assert_close(maps, grads, rtol=2e-2, atol=2e-4)


def test_baselines():
    ref = np.arange(24, dtype=float).reshape(2, 3, 4)
    assert make_baseline("zero") == 0.0
    assert make_baseline("mean", ref) == pytest.approx(11.5)
    assert make_baseline("median", ref) == pytest.approx(11.5)
    random = make_baseline("random", ref, seed=3)
    assert random.shape == (1, 3, 4)
    assert torch.equal(random, make_baseline("random", ref, seed=3))
    with pytest.raises(ValueError, match="needs reference data"):
        make_baseline("mean")
    with pytest.raises(ValueError, match="Unknown IG baseline"):
        make_baseline("blur", ref)
    # a tensor baseline is used by IG
    model = build_model("linear", 4, 3, 2).eval()
    out = integrated_gradients(model, torch.randn(2, 3, 4), 1, baseline=random, n_steps=4)
    assert out.shape == (2, 3, 4)


def test_registry_and_errors():
    assert "ig" in METHODS
    model = build_model("linear", 4, 3, 2).eval()
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(attribute("ig", model, x, 0, n_steps=3),
                               integrated_gradients(model, x, 0, n_steps=3))
    with pytest.raises(ValueError, match="Unknown attribution method 'shap'; available: ablation"):
        attribute("shap", model, x, 0)
    with pytest.raises(ValueError, match="n_steps"):
        integrated_gradients(model, x, 0, n_steps=0)
    with pytest.raises(ValueError, match="make_baseline"):
        integrated_gradients(model, x, 0, baseline="mean")
