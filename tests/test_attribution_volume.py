"""Attribution of volume models (cnn3d, Kan et al. 2020 §3.3): layout, 3D methods, localization, reliability."""

import nibabel as nib
import numpy as np
import pytest
import torch
import torch.nn.functional as F  # noqa: N812
from captum.attr import LayerGradCam

from xaibids.attribution import (
    METHODS,
    attribute,
    faithfulness,
    method_agreement,
    method_dice,
    randomization_check,
)
from xaibids.attribution.methods import last_conv_layer, volume_feature_mask
from xaibids.attribution.perturbation import gaussian_blur3d, meaningful_perturbation
from xaibids.models import build_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

GRID = (12, 14, 12)
NV = int(np.prod(GRID))

#: Cheap parameters for the slow methods in the shape test.
FAST = {"mp": dict(n_iter=3, n_jitter=2), "shapleysampling": dict(n_samples=2), "ig": dict(n_steps=8),
        "gradientshap": dict(n_samples=4), "smoothgrad": dict(n_samples=4)}


def _model(grid=GRID, seed=0, **kw):
    torch.manual_seed(seed)
    kw.setdefault("channels", (4, 8, 8))
    return build_model("cnn3d", int(np.prod(grid)), 1, 2, grid=grid, **kw).eval()


def _inputs(n=3, seed=1, grid=GRID):
    return torch.randn(n, 1, int(np.prod(grid)), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_returns_the_volume_layout_or_refuses(method):
    model = _model()
    x, target = _inputs(), torch.tensor([0, 1, 1])
    if "cnn3d" in METHODS[method].models:
        out = attribute(method, model, x, target, baseline=0.0, **FAST.get(method, {}))
        assert out.shape == (3, 1, NV) and torch.isfinite(out).all()
        if method not in ("mp", "gradcam", "guidedgradcam"):
            # on an untrained model MP may keep its mask at 1 and Grad-CAM may be rectified to 0
            assert float(out.abs().sum()) > 0
    else:
        with pytest.raises(ValueError, match=f"'{method}'.*does not support the 'cnn3d' model"):
            attribute(method, model, x, target)


def test_supported_and_refused_methods():
    supported = {k for k, e in METHODS.items() if "cnn3d" in e.models}
    assert {"ig", "saliency", "inputxgradient", "deeplift", "guidedbackprop", "deconvolution",
            "smoothgrad", "gradientshap", "gradcam", "guidedgradcam", "occlusion", "ablation", "lrp",
            "mp"} <= supported
    assert {"weight", "weightxinput", "outputdiff"}.isdisjoint(supported)
    assert METHODS["mp"].models == ("cnn3d",)
    assert "fong2017interpretable" in METHODS["mp"].citations
    with pytest.raises(ValueError, match="does not support the 'stdnn' model"):
        attribute("mp", build_model("stdnn", 4, 10, 2), torch.randn(2, 10, 4), 0)
    with pytest.raises(ValueError, match="needs a volume model"):
        meaningful_perturbation(build_model("linear", 4, 10, 2), torch.randn(2, 10, 4), 0)


def test_volume_inputs_must_match_the_grid():
    with pytest.raises(ValueError, match=r"flattened volumes of shape \(batch, 1, 2016\)"):
        attribute("gradcam", _model(), torch.randn(2, 2, NV // 2), 0)


# --------------------------------------------------------------------------- Grad-CAM, occlusion, ablation


def test_gradcam_3d_matches_a_direct_computation():
    """Kan et al. 2020 Eq. 6-7: channel weights = mean gradient over the volume, ReLU, trilinear upsampling."""
    model = _model()
    x, target = _inputs(), torch.tensor([1, 0, 1])
    name, layer = last_conv_layer(model)
    assert name == "block3.2"  # the ReLU after the last Conv3d and its batch norm
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("a", o))
    logits = model(x)
    handle.remove()
    a = store["a"]
    (grad,) = torch.autograd.grad(logits[torch.arange(3), target].sum(), a)
    alpha = grad.mean(dim=(2, 3, 4), keepdim=True)
    cam = (alpha * a).sum(dim=1, keepdim=True).detach()

    def up(c):
        return F.interpolate(c, size=GRID, mode="trilinear", align_corners=False).reshape(3, 1, -1)

    raw = attribute("gradcam", model, x, target, relu_attributions=False)
    assert torch.allclose(raw, up(cam), atol=1e-6) and float(raw.abs().sum()) > 0
    assert torch.allclose(attribute("gradcam", model, x, target), up(torch.relu(cam)), atol=1e-6)
    near = attribute("gradcam", model, x, target, relu_attributions=False, interpolate_mode="nearest")
    assert near.shape == (3, 1, NV) and not torch.allclose(near, raw)
    direct = LayerGradCam(model, layer).attribute(x, target=target, relu_attributions=True)
    assert direct.shape[2:] == (3, 4, 3)


def test_occlusion_slides_3d_cubes():
    model = _model()
    x, target = _inputs(1), 1
    out = attribute("occlusion", model, x, target, patch=4, patch_stride=4)
    vol = out.reshape(GRID)
    # non-overlapping 4-voxel cubes: constant per cube, equal to the logit drop when it is zeroed
    with torch.no_grad():
        full = model(x)[0, 1]
        occluded = x.clone().reshape(1, 1, *GRID)
        occluded[..., 4:8, 0:4, 8:12] = 0.0
        drop = full - model(occluded.reshape(1, 1, -1))[0, 1]
    block = vol[4:8, 0:4, 8:12]
    assert torch.allclose(block, torch.full_like(block, float(drop)), atol=1e-5)
    # Captum adds a last, clipped cube where the stride does not fit: Y voxels 12-13
    with torch.no_grad():
        occluded = x.clone().reshape(1, 1, *GRID)
        occluded[..., 0:4, 12:14, 0:4] = 0.0
        drop = full - model(occluded.reshape(1, 1, -1))[0, 1]
    assert torch.allclose(vol[0:4, 12:14, 0:4], torch.full((4, 2, 4), float(drop)), atol=1e-5)
    default = attribute("occlusion", model, x, target)  # 6-voxel cubes, stride 3
    assert default.shape == (1, 1, NV) and not torch.allclose(default, out)
    with pytest.raises(ValueError, match="patch_stride .* larger than the patch"):
        attribute("occlusion", model, x, target, patch=3, patch_stride=4)


def _label_image(path, grid=GRID):
    idx = np.indices(grid)
    labels = (1 + (idx[0] // 6) * 4 + (idx[1] // 7) * 2 + idx[2] // 6).astype(np.int16)
    labels[:2] = 0  # a background slab
    nib.save(nib.Nifti1Image(labels, np.diag([2.0, 2.0, 2.0, 1.0])), path)
    return labels


def test_ablation_with_a_label_image_gives_one_value_per_region(tmp_path):
    model = _model()
    x, target = _inputs(2), torch.tensor([0, 1])
    labels = _label_image(tmp_path / "atlas.nii.gz")
    out = attribute("ablation", model, x, target, feature_mask=str(tmp_path / "atlas.nii.gz"))
    assert out.shape == (2, 1, NV)
    flat = labels.reshape(-1)
    for sample in range(2):
        values = out[sample, 0].numpy()
        for label in np.unique(flat):
            region = values[flat == label]
            assert np.allclose(region, region[0])
    # the value of region 3 is the logit drop when it is set to the baseline
    with torch.no_grad():
        ablated = x.clone()
        ablated[:, :, torch.as_tensor(flat == 3)] = 0.0
        drop = model(x)[[0, 1], [0, 1]] - model(ablated)[[0, 1], [0, 1]]
    assert np.allclose(out[:, 0, np.flatnonzero(flat == 3)[0]].numpy(), drop.numpy(), atol=1e-5)
    # an array gives the same; a label image on another grid is refused
    same = attribute("ablation", model, x, target, feature_mask=labels)
    assert torch.allclose(same, out)
    nib.save(nib.Nifti1Image(np.zeros((12, 14, 13), np.int16), np.eye(4)), tmp_path / "other.nii.gz")
    with pytest.raises(ValueError, match=r"has shape \(12, 14, 13\), but the model's grid is \(12, 14, 12\)"):
        attribute("ablation", model, x, target, feature_mask=str(tmp_path / "other.nii.gz"))
    with pytest.raises(ValueError, match="integer labels"):
        attribute("ablation", model, x, target, feature_mask=labels + 0.5)


def test_default_ablation_groups_are_3d_blocks():
    mask = volume_feature_mask(None, GRID, 6).reshape(GRID)
    assert len(torch.unique(mask)) == 2 * 3 * 2  # 12/6, ceil(14/6), 12/6
    assert len(torch.unique(mask[0:6, 0:6, 0:6])) == 1 and mask[0, 0, 0] != mask[0, 6, 0]
    out = attribute("ablation", _model(), _inputs(1), 0)
    assert len(torch.unique(out)) <= 12


def test_lrp_conserves_the_logit_on_cnn3d():
    """Epsilon rule on Conv3d / BatchNorm3d: relevance sums to the logit without biases."""
    model = _model()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm3d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.bias.copy_(m.running_mean * m.weight / torch.sqrt(m.running_var + m.eps))  # no offset
            elif getattr(m, "bias", None) is not None:
                m.bias.zero_()
    x, target = _inputs(), torch.tensor([0, 1, 1])
    out = attribute("lrp", model, x, target)
    with torch.no_grad():
        logits = model(x)[torch.arange(3), target]
    assert torch.allclose(out.sum(dim=(1, 2)), logits, rtol=1e-3, atol=1e-5)


# --------------------------------------------------------------------------- Meaningful Perturbation


def test_gaussian_blur_keeps_constants_and_mean():
    ones = torch.ones(1, 1, *GRID)
    assert torch.allclose(gaussian_blur3d(ones, 10.0, 5), ones)
    spike = torch.zeros(1, 1, 9, 9, 9)
    spike[0, 0, 4, 4, 4] = 1.0
    blurred = gaussian_blur3d(spike, 1.0, 5)
    assert torch.isclose(blurred.sum(), torch.tensor(1.0)) and blurred[0, 0, 4, 4, 4] == blurred.max()
    assert torch.allclose(blurred, blurred.flip(2)) and torch.allclose(blurred, blurred.permute(0, 1, 3, 2, 4))


def test_mp_is_deterministic_and_in_unit_range():
    model = _model()
    x, target = _inputs(2), torch.tensor([0, 1])
    a = attribute("mp", model, x, target, n_iter=5, n_jitter=3, seed=4)
    b = attribute("mp", model, x, target, n_iter=5, n_jitter=3, seed=4)
    assert torch.equal(a, b) and float(a.min()) >= 0 and float(a.max()) <= 1
    # a sample's map does not depend on the rest of the batch
    alone = attribute("mp", model, x[1:], target[1:], n_iter=5, n_jitter=3, seed=4)
    assert torch.allclose(alone, a[1:])
    # the model is left untouched
    assert all(p.grad is None for p in model.parameters())
    with pytest.raises(ValueError, match="kernel_size must be odd"):
        attribute("mp", model, x, target, kernel_size=4)
    with pytest.raises(ValueError, match="l1_coef"):
        attribute("mp", model, x, target, l1_coef=-1.0)


def test_mp_defaults_are_the_seed_hyperparameters():
    d = METHODS["mp"].defaults
    seed_002 = (10.0, 10.0, 3.0, 1.0, 7.0)
    assert (d["blur_sigma"], d["mask_sigma"], d["l1_coef"], d["tv_coef"], d["tv_beta"]) == seed_002
    assert (d["mask_scale"], d["jitter"], d["n_jitter"], d["lr"]) == (4, 5, 10, 0.3)


# --------------------------------------------------------------------------- localization on toy volumes

TOY_GRID = (16, 18, 16)
#: The class signal: +1 (class 1) or -1 (class 0) added to this cube, inside octant 2 below.
CUBE = (slice(2, 6), slice(11, 15), slice(1, 5))


def _toy(n, seed):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    x = rng.normal(size=(n,) + TOY_GRID).astype(np.float32)
    x[(slice(None),) + CUBE] += np.where(y == 1, 1.0, -1.0)[:, None, None, None]
    return torch.from_numpy(x.reshape(n, 1, -1)), torch.from_numpy(y)


@pytest.fixture(scope="module")
def trained():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model("cnn3d", int(np.prod(TOY_GRID)), 1, 2, grid=TOY_GRID, channels=(4, 8, 8), dropout=0.0)
    x, y = _toy(64, 0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(15):
        model.train()
        order = torch.randperm(64)
        for start in range(0, 64, 16):
            i = order[start:start + 16]
            optimizer.zero_grad()
            F.cross_entropy(model(x[i]), y[i]).backward()
            optimizer.step()
    model.eval()
    xt, yt = _toy(8, 1)
    with torch.no_grad():
        assert float((model(xt).argmax(1) == yt).float().mean()) == 1.0
    return model, xt, yt


def _octants(grid=TOY_GRID):
    idx = np.indices(grid)
    return (idx[0] // (grid[0] // 2)) * 4 + (idx[1] // (grid[1] // 2)) * 2 + idx[2] // (grid[2] // 2)


def _ranking(maps, labels):
    """Regions by mean absolute attribution, largest first, and the share of each region's mass."""
    a = np.abs(maps.numpy().reshape(len(maps), -1)).mean(axis=0)
    flat = labels.reshape(-1)
    regions = np.unique(flat)
    means = np.array([a[flat == r].mean() for r in regions])
    share = {int(r): float(a[flat == r].sum() / a.sum()) for r in regions}
    return [int(r) for r in regions[np.argsort(-means)]], share


@pytest.mark.parametrize("method, params", [("ig", dict(n_steps=16)), ("gradcam", {}), ("mp", dict(n_iter=60))])
def test_maps_rank_the_signal_region_first(trained, method, params):
    model, x, y = trained
    octants = _octants()
    cube_octant = int(octants[CUBE][0, 0, 0])
    assert np.all(octants[CUBE] == cube_octant) and cube_octant == 2
    maps = attribute(method, model, x, y, **params)
    assert maps.shape == (8, 1, int(np.prod(TOY_GRID)))
    order, share = _ranking(maps, octants)
    assert order[0] == cube_octant, (method, order, share)
    if method == "ig":
        # finer atlas: 4-voxel blocks plus the cube as its own region; the cube comes first
        # (Grad-CAM's last feature maps and MP's mask have a 4-voxel resolution, too coarse here)
        idx = np.indices(TOY_GRID)
        fine = (idx[0] // 4) * 100 + (idx[1] // 4) * 10 + idx[2] // 4
        fine[CUBE] = 999
        order, share = _ranking(maps, fine)
        assert order[0] == 999 and share[999] > 5 * (64 / fine.size), (method, order[:3], share[999])


# --------------------------------------------------------------------------- reliability


def test_reliability_on_cnn3d_maps(trained):
    model, x, y = trained
    x, y = x[:4], y[:4]
    table = randomization_check(model, x, y, methods=("ig", "gradcam"), method_params={"ig": {"n_steps": 8}})
    layers = table[table.method == "ig"].layer.tolist()
    assert layers[:4] == ["none", "classifier", "block3.1", "block3.0"] and len(layers) == 8
    assert np.isclose(table[(table.method == "ig") & (table.step == 0)].spearman.iloc[0], 1.0)
    assert table[(table.method == "ig") & (table.step == 7)].spearman.iloc[0] < 0.9
    faith = faithfulness(model, x, y, methods=("ig",), method_params={"ig": {"n_steps": 8}},
                         n_perturb_samples=3)
    assert set(faith.metric) == {"infidelity", "max_sensitivity", "completeness_error",
                                 "relative_completeness_error"}
    assert np.isfinite(faith.value).all()
    maps = {k: attribute(k, model, x, y, **p).numpy()
            for k, p in (("ig", {"n_steps": 8}), ("gradcam", {}), ("guidedbackprop", {}))}
    brain = np.zeros(TOY_GRID, bool)
    brain[1:-1, 1:-1, 1:-1] = True
    agreement = method_agreement(maps, mask=brain.reshape(-1))
    assert list(agreement.columns) == ["method", "ig", "gradcam", "guidedbackprop"]
    assert np.allclose(np.diag(agreement.iloc[:, 1:].to_numpy()), 1.0)
    assert method_agreement(maps, level="feature", mask=brain.reshape(1, -1)).shape == (3, 4)
    dice = method_dice(maps, top_fraction=0.1, mask=brain.reshape(-1))
    values = dice.iloc[:, 1:].to_numpy()
    assert np.all((values >= 0) & (values <= 1)) and np.allclose(np.diag(values), 1.0)
    # with the mask, elements outside the brain never enter the masks being compared
    outside = {k: v.copy() for k, v in maps.items()}
    for v in outside.values():
        v.reshape(len(v), -1)[:, ~brain.reshape(-1)] = 1e6
    assert np.allclose(method_dice(outside, mask=brain.reshape(-1)).iloc[:, 1:], values)
    with pytest.raises(ValueError, match="does not fit maps"):
        method_dice(maps, mask=np.ones(7, bool))
