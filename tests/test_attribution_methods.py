"""Tests of the attribution method registry (issue #5): every method, its shape and its limits."""

import numpy as np
import pytest
import torch
from torch import nn

from xaibids.attribution import METHODS, attribute, map_keys, resolve_params
from xaibids.attribution.methods import gradcam, last_conv_layer, lrp
from xaibids.learning import EnsembleConfig, run_ensemble
from xaibids.models import build_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

MODELS = {
    "stdnn": dict(channels=(4, 4), kernel_size=3),
    "lstm-attn": dict(hidden_size=3, attention_size=3),
    "linear": {},
    "connectome": {},
}


def _model(name, T=13, F=4):
    torch.manual_seed(0)
    return build_model(name, F, T, 2, **MODELS[name]).eval()


@pytest.mark.parametrize("model_name", list(MODELS))
@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_returns_the_input_shape_or_a_clear_error(method, model_name):
    model = _model(model_name)
    x = torch.randn(3, 13, 4, generator=torch.Generator().manual_seed(1))
    target = torch.tensor([0, 1, 1])
    if model_name in METHODS[method].models:
        out = attribute(method, model, x, target, baseline=0.0)
        assert out.shape == x.shape and torch.isfinite(out).all()
        assert float(out.abs().sum()) > 0
    else:
        with pytest.raises(ValueError, match=f"'{method}'.*does not support the '{model_name}' model"):
            attribute(method, model, x, target)


def test_keys_are_bids_safe_and_documented():
    for key, entry in METHODS.items():
        assert key.isalnum() and key.islower() and entry.key == key
        assert entry.description and entry.citations and entry.name
    assert [k for k, _, _ in map_keys(["ig", "deeplift", "saliency"], ("zero", "mean"))] == \
        ["igZero", "igMean", "deeplift", "saliency"]
    assert map_keys(["ig", "occlusion"], ("random",)) == [("ig", "ig", "random"), ("occlusion", "occlusion", "random")]
    assert resolve_params("ig", n_steps=8) == {"n_steps": 8, "internal_batch_size": None,
                                               "method": "gausslegendre", "multiply_by_inputs": False,
                                               "completeness_tolerance": 0.01}
    assert resolve_params("occlusion")["window"] == (10, 1)
    with pytest.raises(ValueError, match="has no parameter.*accepted: n_samples"):
        resolve_params("smoothgrad", stdevs=1.0)


def test_layer_limits_raise_clear_errors():
    class NoConv(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(x.mean(dim=1))

    x = torch.randn(2, 6, 4)
    with pytest.raises(ValueError, match="Grad-CAM needs a convolutional model"):
        gradcam(NoConv().eval(), x, 0)
    with pytest.raises(ValueError, match="LRP has no propagation rule for layer type.*LSTM"):
        lrp(_model("lstm-attn", T=6), x, 0)
    with pytest.raises(ValueError, match="reads the weights of the 'linear' model"):
        METHODS["weight"].function(NoConv(), x, 0)
    with pytest.raises(ValueError, match="feature_mask must have shape"):
        attribute("ablation", _model("linear", T=6), x, 0, feature_mask=[0, 1])
    with pytest.raises(ValueError, match="integration rule"):
        attribute("ig", _model("linear", T=6), x, 0, method="simpson")
    with pytest.raises(ValueError, match="does not support the 'lstm-attn' model"):
        EnsembleConfig(model="lstm-attn", attribution=("ig", "gradcam"))


def test_gradcam_over_time_matches_a_direct_computation():
    """Grad-CAM (Selvaraju 2017 Eq. 1-2) on stdnn's last ReLU, upsampled along *time*."""
    model = _model("stdnn", T=13)
    x = torch.randn(2, 13, 4, generator=torch.Generator().manual_seed(2))
    target = torch.tensor([1, 0])
    name, layer = last_conv_layer(model)
    assert name == "block2.1"  # the ReLU after the last Conv1d
    acts = {}
    handle = layer.register_forward_hook(lambda m, i, o: acts.setdefault("a", o))
    logits = model(x)
    handle.remove()
    a = acts["a"]  # (batch, channels, time') with time' = 6 after pooling
    assert a.shape[2] == 6
    grads = torch.autograd.grad(logits[torch.arange(2), target].sum(), a)[0]
    cam = torch.relu((grads.mean(dim=2, keepdim=True) * a).sum(dim=1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, size=13, mode="linear")  # (batch, 1, time)
    expected = cam.transpose(1, 2).expand(-1, 13, 4)
    out = attribute("gradcam", model, x, target)
    torch.testing.assert_close(out, expected.detach(), rtol=1e-5, atol=1e-7)
    guided = attribute("guidedgradcam", model, x, target)
    torch.testing.assert_close(guided, attribute("guidedbackprop", model, x, target) * expected.detach())


def test_linear_model_importances_of_seed_004():
    model = _model("linear", T=5, F=3)
    x = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(3))
    target = torch.tensor([0, 1, 1, 0])
    W = model.linear.weight.detach().numpy().reshape(2, 5, 3)
    b = model.linear.bias.detach().numpy()
    xn = x.numpy()
    np.testing.assert_allclose(attribute("weight", model, x, target).numpy(), W[target.numpy()], rtol=1e-6)
    np.testing.assert_allclose(attribute("weightxinput", model, x, target).numpy(),
                               W[target.numpy()] * xn, rtol=1e-6)
    # output difference: p_target(x) - p_target(x without one element), directly with numpy
    od = attribute("outputdiff", model, x, target).numpy()
    for i in range(4):
        z = W.reshape(2, -1) @ xn[i].ravel() + b
        p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
        zr = z[:, None] - W.reshape(2, -1) * xn[i].ravel()[None]
        pr = np.exp(zr - zr.max(axis=0)) / np.exp(zr - zr.max(axis=0)).sum(axis=0)
        np.testing.assert_allclose(od[i].ravel(), p[target[i]] - pr[target[i]], atol=1e-6)
    # input-multiplied IG (any rule), Input x Gradient, DeepLIFT and LRP-epsilon (zero bias) = W x X
    with torch.no_grad():
        model.linear.bias.zero_()
    wx = W[target.numpy()] * xn
    for method, params in (("ig", {"multiply_by_inputs": True, "method": "riemann_middle", "n_steps": 5}),
                           ("inputxgradient", {}), ("deeplift", {}), ("lrp", {})):
        np.testing.assert_allclose(attribute(method, model, x, target, **params).numpy(), wx,
                                   rtol=1e-4, atol=1e-6, err_msg=method)
    # Captum's trapezoid weights sum to (n_steps - 1) / n_steps (documented in ig.py)
    trapezoid = attribute("ig", model, x, target, multiply_by_inputs=True, method="riemann_trapezoid", n_steps=5)
    np.testing.assert_allclose(trapezoid.numpy(), 0.8 * wx, rtol=1e-4, atol=1e-6)


def test_ablation_masks_and_occlusion_windows():
    model = _model("linear", T=6, F=4)
    x = torch.randn(2, 6, 4, generator=torch.Generator().manual_seed(4))
    W = model.linear.weight.detach()[1].reshape(6, 4)
    # one region over all time: the drop of the logit when the region is zeroed, on all its cells
    region = attribute("ablation", model, x, 1).numpy()
    expected = (W * x).sum(dim=1).numpy()  # (batch, features)
    np.testing.assert_allclose(region, np.repeat(expected[:, None, :], 6, axis=1), rtol=1e-5, atol=1e-6)
    # two networks of two regions each
    grouped = attribute("ablation", model, x, 1, feature_mask=[0, 0, 1, 1]).numpy()
    np.testing.assert_allclose(grouped[:, 0, 0], expected[:, :2].sum(axis=1), rtol=1e-5, atol=1e-6)
    # occlusion with single-element windows equals W x X for a linear model
    occ = attribute("occlusion", model, x, 1, window=(1, 1), stride=(1, 1)).numpy()
    np.testing.assert_allclose(occ, (W * x).numpy(), rtol=1e-5, atol=1e-6)


def test_ensemble_with_several_baselines_and_methods(tmp_path):
    rng = np.random.default_rng(0)
    from xaibids.learning import TimeseriesDataset

    X = rng.normal(size=(12, 6, 4)).astype(np.float32)
    y = np.arange(12) % 2
    X[y == 1, :, 0] += 1.0
    dataset = TimeseriesDataset(X=X, y=y, classes=["a", "b"], subjects=[f"s{i}" for i in range(12)],
                                sources=[f"s{i}.tsv" for i in range(12)],
                                feature_names=[f"f{j}" for j in range(4)])
    config = EnsembleConfig(model="linear", n_folds=2, n_models=3, epochs=3, batch_size=8, device="cpu",
                            ig_steps=4, ig_method="riemann_trapezoid", baseline=("zero", "mean", "random"),
                            attribution=("ig", "deeplift", "weight"), attribution_batch_size=5,
                            attribution_params={"deeplift": {"eps": 1e-8}})
    result = run_ensemble(dataset, config, tmp_path, progress=False)
    assert list(result.maps) == ["igZero", "igMean", "igRandom", "deeplift", "weight"]
    for maps in result.maps.values():
        assert maps.shape == X.shape
        np.testing.assert_allclose(maps.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    # IG without input multiplication of a linear model is W whatever the baseline
    np.testing.assert_allclose(result.maps["igZero"], result.maps["igRandom"], rtol=1e-4, atol=1e-6)
    assert result.attribution_params["igMean"] == {
        "method": "ig", "baseline": "mean",
        "params": {"n_steps": 4, "internal_batch_size": None, "method": "riemann_trapezoid",
                   "multiply_by_inputs": False}}
    assert result.attribution_params["deeplift"]["baseline"] == "zero"
    assert result.attribution_params["weight"]["baseline"] is None
    stab = result.stability
    assert set(stab.metric) == {"seed_correlation", "split_half_correlation", "split_half_spearman_brown"}
    assert len(stab) == 3 * 5 and stab.value.between(-1, 1).all() and (stab.n_samples == 12).all()
    assert result.run_importance["weight"].shape == (3, 2, 4)
    # each run's importances are shares of sum-normalized maps: they sum to 1 per class
    np.testing.assert_allclose(result.run_importance["weight"].sum(axis=2), 1.0, rtol=1e-6)
    assert "info" not in result.maps and result.map_info[0]["selected_model_index"].keys() == result.maps.keys()
    # the old single-baseline form still works
    assert EnsembleConfig(attribution=("ig",), baseline="zero").baselines == ("zero",)
