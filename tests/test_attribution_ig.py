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


def test_completeness_error_is_captums_relative_delta():
    from captum.attr import IntegratedGradients

    from xaibids.attribution.ig import completeness_error

    torch.manual_seed(2)
    model = build_model("stdnn", 3, 8, 2, channels=(4, 4), kernel_size=3).eval()
    x, target = torch.randn(6, 8, 3), torch.tensor([0, 1, 1, 0, 1, 0])
    attributions = IntegratedGradients(model).attribute(x, baselines=0.0, target=target,
                                                         n_steps=5, method="riemann_left")
    with torch.no_grad():
        change = model(x)[torch.arange(6), target] - model(torch.zeros_like(x))[torch.arange(6), target]
    delta = attributions.sum(dim=(1, 2)) - change
    expected = float(delta.abs().sum() / change.abs().sum())
    assert completeness_error(model, x, target, "zero", 5, "riemann_left") == pytest.approx(
        expected, rel=1e-4)
    # a linear model's path integral is exact with Gauss-Legendre at any step count
    linear = build_model("linear", 3, 8, 2).eval()
    assert completeness_error(linear, x, target, "zero", 4) < 1e-5


def test_converged_steps_are_the_fewest_within_tolerance():
    from xaibids.attribution.ig import STEP_LADDER, converged_ig_steps

    torch.manual_seed(3)
    model = build_model("lstm-attn", 3, 12, 2).eval()
    x, target = torch.randn(16, 12, 3) * 2, torch.arange(16) % 2
    baselines = (0.0, torch.full((1, 12, 3), 0.5))
    for tolerance in (0.05, 0.001):
        steps, trials = converged_ig_steps(model, x, target, baselines, tolerance=tolerance)
        worst = {}
        for t in trials:
            worst[t["n_steps"]] = max(worst.get(t["n_steps"], 0.0), t["completeness_error"])
        assert worst[steps] <= tolerance
        assert all(worst[s] > tolerance for s in worst if s < steps)  # fewest that converge
        assert {t["baseline"] for t in trials} == {0, 1}
    # Riemann sums need more points than Gauss-Legendre for the same tolerance
    riemann, _ = converged_ig_steps(model, x, target, baselines, 0.005, method="riemann_trapezoid")
    gauss, _ = converged_ig_steps(model, x, target, baselines, 0.005)
    assert gauss < riemann
    linear = build_model("linear", 3, 12, 2).eval()
    assert converged_ig_steps(linear, x, target)[0] == STEP_LADDER[0]
    with pytest.raises(ValueError, match="tolerance must be in"):
        converged_ig_steps(linear, x, target, tolerance=0)
