"""Tests of the 3D CNN for T1 volumes (Kan et al. 2020, §3.2): shapes, validation, build_model."""

import numpy as np
import pytest
import torch
from torch import nn

from xaibids.attribution.registry import model_name
from xaibids.models import CNN3D, MODEL_NAMES, build_model

GRID = (12, 14, 12)
F = int(np.prod(GRID))


def _model(**kw):
    torch.manual_seed(0)
    kw.setdefault("channels", (4, 8, 8))
    return build_model("cnn3d", F, 1, 3, grid=GRID, **kw)


def test_registered_and_named():
    assert "cnn3d" in MODEL_NAMES
    model = _model()
    assert isinstance(model, CNN3D) and model_name(model) == "cnn3d"
    assert model.grid == GRID and isinstance(model.grid, tuple)


def test_output_shape_and_gradient():
    model = _model()
    x = torch.randn(4, 1, F, requires_grad=True)
    logits = model(x)
    assert logits.shape == (4, 3)
    logits[:, 1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_layers_follow_seed_002():
    """Three Conv3d -> BatchNorm3d -> ReLU -> MaxPool3d(2) blocks, dropout, one linear layer."""
    model = _model(channels=(8, 16, 32), dropout=0.5)
    for block, (c_in, c_out) in zip((model.block1, model.block2, model.block3), ((1, 8), (8, 16), (16, 32))):
        conv, bn, relu, pool = block
        assert isinstance(conv, nn.Conv3d) and (conv.in_channels, conv.out_channels) == (c_in, c_out)
        assert conv.kernel_size == (3, 3, 3) and conv.padding == (1, 1, 1)
        assert isinstance(bn, nn.BatchNorm3d) and isinstance(relu, nn.ReLU)
        assert isinstance(pool, nn.MaxPool3d) and pool.kernel_size == 2
    assert model.dropout.p == 0.5
    # 12 -> 6 -> 3 -> 2, 14 -> 7 -> 4 -> 2 (ceil mode keeps odd borders)
    assert model.feature_shape == (32, 2, 2, 2)
    assert model.classifier.in_features == 32 * 8


def test_default_grid_is_light():
    grid = (57, 69, 60)
    model = build_model("cnn3d", int(np.prod(grid)), 1, 2, grid=grid)
    assert model.feature_shape == (32, 8, 9, 8)
    assert sum(p.numel() for p in model.parameters()) < 100_000
    # the seed's own layers: unpadded convolutions, 32/64/128 channels
    seed = build_model("cnn3d", int(np.prod(grid)), 1, 2, grid=grid, channels=(32, 64, 128), padding="valid")
    assert seed.feature_shape == (128, 6, 7, 6)


def test_flattening_is_c_order():
    """Voxel (i, j, k) of the grid is feature i*Y*Z + j*Z + k: only it moves the first conv."""
    model = _model().eval()
    x = torch.zeros(1, 1, F, requires_grad=True)
    captured = {}

    def hook(module, inputs, output):
        captured["in"] = inputs[0]

    model.block1[0].register_forward_hook(hook)
    model(x)
    volume = captured["in"]
    (grad,) = torch.autograd.grad(volume[0, 0, 3, 5, 7], x)
    assert int(grad.reshape(-1).argmax()) == np.ravel_multi_index((3, 5, 7), GRID)


def test_seeded_initialization_is_reproducible():
    a, b = _model(), _model()
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_validation_errors():
    with pytest.raises(ValueError, match=r"needs the model option grid=\(X, Y, Z\)"):
        build_model("cnn3d", F, 1, 2)
    with pytest.raises(ValueError, match="n_timepoints = 1"):
        build_model("cnn3d", F, 2, 2, grid=GRID)
    with pytest.raises(ValueError, match=r"has 2016 voxels but n_features=2000"):
        build_model("cnn3d", 2000, 1, 2, grid=GRID)
    with pytest.raises(ValueError, match="three positive integers"):
        build_model("cnn3d", F, 1, 2, grid=(12, 14))
    with pytest.raises(ValueError, match="three positive integers"):
        build_model("cnn3d", F, 1, 2, grid=(12.0, 14, 12))
    with pytest.raises(ValueError, match="channels must be three"):
        build_model("cnn3d", F, 1, 2, grid=GRID, channels=(4, 8))
    with pytest.raises(ValueError, match="padding must be"):
        build_model("cnn3d", F, 1, 2, grid=GRID, padding="full")
    with pytest.raises(ValueError, match="dropout"):
        build_model("cnn3d", F, 1, 2, grid=GRID, dropout=1.0)
    with pytest.raises(ValueError, match="too small.*at least 15 voxels"):
        build_model("cnn3d", F, 1, 2, grid=GRID, padding="valid")
    with pytest.raises(ValueError, match="no option.*accepted options are: grid, channels"):
        build_model("cnn3d", F, 1, 2, grid=GRID, hidden_size=3)
    model = _model()
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 1, 2016\)"):
        model(torch.randn(2, 1, 2015))


def test_grid_from_a_config_list_is_a_tuple():
    model = build_model("cnn3d", F, 1, 2, grid=[12, 14, np.int64(12)], channels=[4, 4, 4])
    assert model.grid == GRID and all(type(g) is int for g in model.grid)


def test_global_average_pooling_head():
    """``head="gap"``: the logits are a linear function of the last block's channel means, so
    Grad-CAM is the class activation map (Zhou et al., 2016)."""
    torch.manual_seed(0)
    model = _model(head="gap").eval()
    assert model.classifier.in_features == model.feature_shape[0]
    x = torch.randn(2, 1, F)
    h = model.block3(model.block2(model.block1(x.reshape(2, 1, *GRID))))
    expected = model.classifier(h.mean(dim=(2, 3, 4)))
    torch.testing.assert_close(model(x), expected)
    with pytest.raises(ValueError, match="head must be 'flatten' or 'gap'"):
        _model(head="max")
