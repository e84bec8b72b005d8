"""Tests of Integrated Gradients through Captum (Lewis et al. 2023 §2.3, Strock et al. 2025 baselines)."""

import numpy as np
import pytest
import torch

from xaibids.attribution import METHODS, attribute, integrated_gradients, make_baseline
from xaibids.models import build_model


def test_ig_of_linear_model_is_the_target_weight_map():
    """Without input multiplication, IG of a linear model is its weight map (Lewis et al. 2023 §2.3)."""
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


def _sharp_lstm_batch(n=16):
    """An LSTM whose weights are scaled up 8x, so its gates saturate along the IG path: one
    Gauss-Legendre rule needs more than 64 points for 1 % completeness error on this batch."""
    torch.manual_seed(3)
    model = build_model("lstm-attn", 3, 12, 2).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(8)
    return model, torch.randn(n, 12, 3) * 2, torch.arange(n) % 2


def test_adaptive_ig_reaches_the_tolerance_and_its_record_is_the_maps_own():
    """The completeness error of the adaptive maps is within the tolerance, and the delta it
    reports is that of the maps it returns (Σ multiplied map - logit change, computed here)."""
    from xaibids.attribution.ig import adaptive_integrated_gradients, converged_ig_steps

    model, x, target = _sharp_lstm_batch()
    baseline = torch.full((1, 12, 3), 0.5)
    with torch.no_grad():
        rows = torch.arange(len(x))
        change = model(x)[rows, target] - model(torch.zeros_like(x) + baseline)[rows, target]
    reference = integrated_gradients(model, x, target, baseline, n_steps=256)
    for tolerance in (0.05, 0.01):
        result = adaptive_integrated_gradients(model, x, target, baseline, tolerance=tolerance)
        assert result.converged and result.completeness_error <= tolerance
        torch.testing.assert_close(result.change, change, rtol=1e-5, atol=1e-6)
        delta = (result.attributions * (x - baseline)).sum(dim=(1, 2)) - change
        torch.testing.assert_close(result.delta, delta, rtol=1e-3, atol=1e-5)
        error = float((result.attributions - reference).norm() / reference.norm())
        assert error < 10 * tolerance
        assert result.points.min() >= 8 and (result.points % 2 == 0).all()
        assert (result.forward_passes >= 5).all()
    # a tighter tolerance spends more points, and the maps move towards the converged integral
    loose = adaptive_integrated_gradients(model, x, target, baseline, tolerance=0.05)
    assert result.points.sum() > loose.points.sum()
    assert (result.attributions - reference).norm() < (loose.attributions - reference).norm()
    # and it spends fewer points than the one Gauss-Legendre rule that converges the batch
    uniform, _ = converged_ig_steps(model, x, target, (baseline,), tolerance=0.01)
    assert float(result.points.float().mean()) < uniform


def test_adaptive_ig_is_exact_at_once_on_a_linear_model():
    """A linear logit's path integral is exact on the first panels: no refinement, and the maps
    are the weights (Lewis et al. 2023 §2.3), multiplied by (x - baseline) on request."""
    from xaibids.attribution.ig import INITIAL_PANELS, PANEL_POINTS, adaptive_integrated_gradients

    torch.manual_seed(0)
    model = build_model("linear", n_features=4, n_timepoints=6, n_classes=3).eval()
    x, target = torch.randn(5, 6, 4), torch.tensor([0, 1, 2, 1, 0])
    result = adaptive_integrated_gradients(model, x, target, tolerance=1e-4)
    weights = model.linear.weight.detach().reshape(3, 6, 4)[target]
    torch.testing.assert_close(result.attributions, weights, rtol=1e-5, atol=1e-6)
    assert (result.points == INITIAL_PANELS * PANEL_POINTS).all()
    multiplied = adaptive_integrated_gradients(model, x, target, multiply_by_inputs=True)
    torch.testing.assert_close(multiplied.attributions, weights * x, rtol=1e-5, atol=1e-6)
    # through the registry, as the ensemble's other callers use it
    torch.testing.assert_close(
        attribute("ig", model, x, target, n_steps="adaptive", completeness_tolerance=1e-4),
        result.attributions)


def test_adaptive_ig_stops_at_max_points_and_refuses_bad_settings():
    from xaibids.attribution.ig import adaptive_integrated_gradients, completeness_terms

    model, x, target = _sharp_lstm_batch(n=6)
    capped = adaptive_integrated_gradients(model, x, target, tolerance=1e-7, max_points=16)
    assert not capped.converged and capped.points.max() <= 16
    delta, change = completeness_terms(model, x, target, n_steps="adaptive",
                                       completeness_tolerance=0.01)
    assert float(delta.abs().sum() / change.abs().sum()) <= 0.01
    with pytest.raises(ValueError, match="tolerance must be in"):
        adaptive_integrated_gradients(model, x, target, tolerance=0)
    with pytest.raises(ValueError, match="max_points"):
        adaptive_integrated_gradients(model, x, target, max_points=4)
    with pytest.raises(ValueError, match="cannot use the 'riemann_trapezoid' rule"):
        integrated_gradients(model, x, target, n_steps="adaptive", method="riemann_trapezoid")
    with pytest.raises(ValueError, match="positive integer or 'adaptive'"):
        integrated_gradients(model, x, target, n_steps="auto")
