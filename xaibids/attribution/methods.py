"""Attribution methods for ``(batch, time, features)`` timeseries classifiers.

Every function here has the signature ``f(model, inputs, target, baseline=0.0, **params)`` and
returns a detached map shaped like ``inputs``; :mod:`xaibids.attribution.registry` lists them
with their defaults, descriptions and citations. Captum (Kokhlikyan et al., 2020) computes every
method it has; what it lacks is written here with its paper cited:

- Grad-CAM for 1D convolutions over time (Selvaraju et al., 2017, §3, Eq. 1-2) uses Captum's
  ``LayerGradCam`` and ``LayerAttribution.interpolate``; only the layout is adapted: stdnn's
  ``Conv1d`` layers see ``(batch, channels, time)`` while inputs are ``(batch, time, features)``,
  so the class-activation curve over time is upsampled to the input length and repeated over
  the features (the first convolution mixes all features, so Grad-CAM has no feature
  resolution). Captum's ``GuidedGradCam`` assumes channel-first inputs and would upsample along
  the feature axis, hence Guided Grad-CAM is composed here as the element-wise product of Guided
  Backpropagation and the upsampled Grad-CAM (Selvaraju et al., 2017, §3 "Guided Grad-CAM").
- The linear-model importances of Gotsopoulos et al. 2018 (§2.8): ``W`` (the classifier's weights, Pereira et
  al., 2009) and ``W x X`` (weights times activations, Polyn et al., 2005) read the weights of
  :class:`xaibids.models.LinearSoftmax`; the output difference (OD) -- the change of the
  classifier's softmax output when one input is removed (set to 0, the training mean of the
  standardized data) -- is Captum's ``FeatureAblation`` on the softmax output with one input
  element per feature.
- LRP (Bach et al., 2015) is Captum's ``LRP``; Captum has rules for ``Linear``, 2D convolutions
  and 2D pooling only, so for stdnn the epsilon rule (Bach et al., 2015, Eq. 58), which Captum
  applies to ``Linear``/``Conv2d``/``AvgPool2d``, is attached to its ``Conv1d``, 1D pooling and
  identity layers as well. Recurrent layers (``lstm-attn``) have no LRP rule.

Volume models (``cnn3d``, Kan et al. 2020)
-----------------------------------
A model with a ``grid`` attribute ``(X, Y, Z)`` takes a T1 volume as one sample of shape
``(1, X*Y*Z)`` (C-order flattening) and every method here returns its map in that layout,
``(batch, 1, X*Y*Z)``. The gradient and path methods (IG, Saliency, Input x Gradient,
DeepLIFT, Guided Backpropagation, Deconvolution, SmoothGrad, GradientSHAP) need nothing else: the
model reshapes its input itself. The others are adapted:

- Grad-CAM is 3D (Kan et al. 2020, §3.3, Eq. 6-7): Captum's ``LayerGradCam`` on the rectified output
  of the last ``Conv3d`` (after its batch norm), upsampled to the grid with trilinear
  interpolation (``LayerAttribution.interpolate``) and flattened; Guided Grad-CAM multiplies it
  with Guided Backpropagation.
- Occlusion slides cubes of ``patch`` voxels with a stride of ``patch_stride`` voxels over the
  volume (Captum ``Occlusion`` on the 5D volume through a reshaping wrapper).
- Feature ablation and Shapley sampling group voxels by a label image (a NIfTI path or an array
  on the model's grid, e.g. atlas regions) or, by default, by cubic blocks of ``block_size``
  voxels, instead of one group per voxel (a forward pass per voxel).
- LRP gets the epsilon rule on ``Conv3d`` and ``BatchNorm3d`` as well (Captum has rules for
  ``MaxPool3d`` only).
- Meaningful Perturbation (Kan et al. 2020, §3.3, Eq. 1-3), which Captum lacks, is hand-written in
  :mod:`xaibids.attribution.perturbation`.
- The output difference (Gotsopoulos et al. 2018) costs a forward pass per voxel and is refused for volumes.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
from captum.attr import (
    LRP,
    DeepLift,
    Deconvolution,
    FeatureAblation,
    GradientShap,
    GuidedBackprop,
    InputXGradient,
    LayerAttribution,
    LayerGradCam,
    NoiseTunnel,
    Occlusion,
    Saliency,
    ShapleyValueSampling,
)
from captum.attr._utils.lrp_rules import EpsilonRule
from torch import nn

from xaibids.attribution.ig import baseline_value, integrated_gradients

__all__ = [
    "ablation", "deconvolution", "deeplift", "gradcam", "gradientshap", "guidedbackprop",
    "guidedgradcam", "inputxgradient", "lrp", "occlusion", "outputdiff", "saliency",
    "shapleysampling", "smoothgrad", "weight", "weightxinput", "integrated_gradients",
    "last_conv_layer", "volume_grid", "volume_feature_mask",
]

# Layers LRP handles: Captum's own rules plus the 1D / 3D layers we give the epsilon rule.
_LRP_NONLINEAR = (nn.ReLU, nn.Dropout, nn.Tanh)
_LRP_EPSILON_EXTRA = (nn.Conv1d, nn.AvgPool1d, nn.AdaptiveAvgPool1d, nn.Identity, nn.Flatten,
                   nn.Conv3d, nn.BatchNorm3d)
_LRP_CAPTUM = (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.MaxPool1d,
               nn.MaxPool2d, nn.MaxPool3d, nn.BatchNorm2d)


def _check_inputs(inputs: torch.Tensor, name: str) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.ndim != 3:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise ValueError(f"{name} needs inputs of shape (batch, n_timepoints, n_features), got {shape}.")


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Run a stochastic Captum method with its own seed, leaving the global RNG untouched."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def _feature_mask(feature_mask, inputs: torch.Tensor, name: str) -> torch.Tensor:
    """Integer mask ``(1, T, F)``: default one group per feature over all time (one region)."""
    _, T, F = inputs.shape
    if feature_mask is None:
        mask = torch.arange(F, device=inputs.device).expand(T, F)
    else:
        arr = np.asarray(feature_mask)
        if arr.shape not in ((F,), (T, F)):
            raise ValueError(
                f"{name} feature_mask must have shape ({F},) (a group per feature, e.g. the atlas "
                f"network of each region) or ({T}, {F}), got {arr.shape}."
            )
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr.astype(float))) or not np.all(arr == np.round(arr)):
                raise ValueError(f"{name} feature_mask must hold integer group ids.")
        _, codes = np.unique(arr.astype(np.int64), return_inverse=True)
        codes = codes.reshape(arr.shape)
        mask = torch.as_tensor(np.broadcast_to(codes, (T, F)).copy(), device=inputs.device)
    return mask.reshape(1, T, F).long().contiguous()


def _linear_weights(model: nn.Module, name: str) -> nn.Linear:
    from xaibids.models.linear import LinearSoftmax

    if not isinstance(model, LinearSoftmax):
        raise ValueError(
            f"Attribution method {name!r} reads the weights of the 'linear' model (Gotsopoulos et al. 2018, §2.8) "
            f"and does not apply to {type(model).__name__}."
        )
    return model.linear


def _target_rows(target, batch: int, device) -> torch.Tensor:
    if isinstance(target, torch.Tensor):
        t = target.to(device).long().reshape(-1)
        if t.numel() == 1:
            t = t.expand(batch)
    else:
        t = torch.full((batch,), int(target), device=device, dtype=torch.long)
    if t.shape != (batch,):
        raise ValueError(f"target must be an int or have one class per sample ({batch}), got {tuple(t.shape)}.")
    return t


# --------------------------------------------------------------------------- volume models


def volume_grid(model: nn.Module, inputs: torch.Tensor, name: str) -> tuple[int, int, int] | None:
    """The ``(X, Y, Z)`` grid of a volume model (its ``grid`` attribute), None for other models.

    For a volume model the inputs must be flattened volumes ``(batch, 1, X*Y*Z)``.
    """
    grid = getattr(model, "grid", None)
    if grid is None:
        return None
    grid = tuple(int(g) for g in grid)
    if len(grid) != 3:
        raise ValueError(f"{name}: the model's grid must be (X, Y, Z), got {grid!r}.")
    n = int(np.prod(grid))
    if inputs.ndim != 3 or inputs.shape[1] != 1 or inputs.shape[2] != n:
        raise ValueError(
            f"{name} needs flattened volumes of shape (batch, 1, {n}) for a model on the grid "
            f"{grid}, got {tuple(inputs.shape)}."
        )
    return grid


def _cube(value, name: str, grid: tuple[int, int, int]) -> tuple[int, int, int]:
    """An int or three ints (voxels per axis), each clipped to the grid."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        values = (value,) * 3
    elif isinstance(value, (tuple, list)) and len(value) == 3:
        values = tuple(value)
    else:
        raise ValueError(f"{name} must be a positive integer or three of them (voxels per axis), got {value!r}.")
    return tuple(min(_check_positive_int(v, name), g) for v, g in zip(values, grid))


def _load_label_image(path, grid: tuple[int, int, int], name: str) -> np.ndarray:
    import nibabel as nib

    try:
        img = nib.load(os.fspath(path))
    except Exception as exc:  # noqa: BLE001 - report any reading problem with the path
        raise ValueError(f"{name} could not read the label image {os.fspath(path)!r}: {exc}") from exc
    data = np.asanyarray(img.dataobj)
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.shape != grid:
        raise ValueError(
            f"{name} label image {os.fspath(path)!r} has shape {data.shape}, but the model's grid is "
            f"{grid}: resample the atlas to the grid of the model's inputs (the cropped template "
            "grid) first, e.g. with nilearn.image.resample_to_img(..., interpolation='nearest')."
        )
    return data


def volume_feature_mask(feature_mask, grid: tuple[int, int, int], block_size=6, name: str = "ablation",
                        device=None) -> torch.Tensor:
    """Integer group mask ``(1, 1, X*Y*Z)`` for the voxels of a volume model.

    Parameters
    ----------
    feature_mask : None, str, path or array
        ``None``: cubic blocks of ``block_size`` voxels (the last block of an axis may be
        smaller). A path: a NIfTI label image (e.g. an atlas) whose data array has the shape of
        ``grid`` -- it must already be on the model's grid; its affine cannot be checked here.
        An array of shape ``grid``, ``(X*Y*Z,)`` or ``(1, X*Y*Z)``. Labels must be integers;
        every distinct label (``0``, the background, included) is one group.
    grid : tuple of 3 int
    block_size : int or tuple of 3 int, default=6
        Block edge in voxels, for ``feature_mask=None``.
    name : str
        Method name for error messages.
    device : torch.device, optional

    Returns
    -------
    torch.Tensor of shape (1, 1, X*Y*Z), dtype long
        Consecutive group ids ``0..n_groups-1``.
    """
    n = int(np.prod(grid))
    if feature_mask is None:
        b = _cube(block_size, f"{name} block_size", grid)
        idx = np.indices(grid)
        counts = [-(-g // bb) for g, bb in zip(grid, b)]
        arr = ((idx[0] // b[0]) * counts[1] + idx[1] // b[1]) * counts[2] + idx[2] // b[2]
    else:
        if isinstance(feature_mask, (str, os.PathLike)):
            arr = _load_label_image(feature_mask, grid, name)
        else:
            arr = np.asarray(feature_mask)
            if arr.shape not in (grid, (n,), (1, n)):
                raise ValueError(
                    f"{name} feature_mask for a volume model must be a NIfTI label image path or an "
                    f"array of shape {grid}, ({n},) or (1, {n}), got {arr.shape}."
                )
        if not np.issubdtype(arr.dtype, np.integer):
            if not np.all(np.isfinite(arr.astype(float))) or not np.all(arr == np.round(arr)):
                raise ValueError(f"{name} feature_mask must hold integer labels (region ids).")
    _, codes = np.unique(np.asarray(arr).astype(np.int64).reshape(-1), return_inverse=True)
    return torch.as_tensor(codes.reshape(1, 1, n), device=device).long().contiguous()


def _group_mask(feature_mask, inputs, model, block_size, name: str) -> torch.Tensor:
    grid = volume_grid(model, inputs, name)
    if grid is None:
        return _feature_mask(feature_mask, inputs, name)
    return volume_feature_mask(feature_mask, grid, block_size, name, inputs.device)


# --------------------------------------------------------------------------- gradient methods


def saliency(model, inputs, target, baseline=0.0, abs: bool = True):  # noqa: A002 - Captum's name
    """Saliency: the gradient of the target logit (Simonyan et al., 2014, §3.1); Captum ``Saliency``.

    ``abs=True`` (Captum's default) returns its magnitude as in the paper.
    """
    _check_inputs(inputs, "saliency")
    return Saliency(model).attribute(inputs, target=target, abs=bool(abs)).detach()


def inputxgradient(model, inputs, target, baseline=0.0):
    """Input x Gradient (Shrikumar et al., 2016); Captum ``InputXGradient``."""
    _check_inputs(inputs, "inputxgradient")
    return InputXGradient(model).attribute(inputs, target=target).detach()


def deeplift(model, inputs, target, baseline=0.0, multiply_by_inputs: bool = True, eps: float = 1e-10):
    """DeepLIFT with the Rescale rule (Shrikumar et al., 2017, §3.5.1); Captum ``DeepLift``.

    Multipliers are propagated through the ``nn`` activation modules Captum hooks (ReLU, Tanh,
    ...); nonlinearities inside ``nn.LSTM`` fall back to plain gradients.
    """
    _check_inputs(inputs, "deeplift")
    dl = DeepLift(model, multiply_by_inputs=bool(multiply_by_inputs), eps=float(eps))
    return dl.attribute(inputs, baselines=baseline_value(baseline, inputs), target=target).detach()


def guidedbackprop(model, inputs, target, baseline=0.0):
    """Guided Backpropagation (Springenberg et al., 2015, §3.4); Captum ``GuidedBackprop``.

    Only ``nn.ReLU`` modules are guided; a model without them (linear, lstm-attn) gets the plain
    gradient.
    """
    _check_inputs(inputs, "guidedbackprop")
    return GuidedBackprop(model).attribute(inputs, target=target).detach()


def deconvolution(model, inputs, target, baseline=0.0):
    """Deconvolution (Zeiler & Fergus, 2014, §2.1); Captum ``Deconvolution`` (ReLU modules only)."""
    _check_inputs(inputs, "deconvolution")
    return Deconvolution(model).attribute(inputs, target=target).detach()


# --------------------------------------------------------------------------- class activation maps


_CONV = (nn.Conv1d, nn.Conv3d)
_NORM = (nn.BatchNorm1d, nn.BatchNorm3d)


def last_conv_layer(model: nn.Module, layer: str | None = None) -> tuple[str, nn.Module]:
    """The layer Grad-CAM reads: the rectified output of the last convolution by default.

    Parameters
    ----------
    model : torch.nn.Module
        A model with ``nn.Conv1d`` layers over time (stdnn) or ``nn.Conv3d`` layers over a
        volume (cnn3d).
    layer : str, optional
        Dotted module name (``"block1.0"``) to use instead.

    Returns
    -------
    (str, torch.nn.Module)
        The name and module. Without ``layer``: the ``nn.ReLU`` that follows the last
        ``nn.Conv1d`` / ``nn.Conv3d``, directly or after a batch norm (Grad-CAM's rectified
        feature maps ``A^k``; Kan et al. 2020 §3.3 "filter activations of the last convolutional
        layer"), or the convolution itself when no ReLU module follows it.
    """
    named = list(model.named_modules())
    if layer is not None:
        lookup = dict(named)
        if layer not in lookup or layer == "":
            raise ValueError(f"Grad-CAM layer {layer!r} is not a module of {type(model).__name__}.")
        module = lookup[layer]
        if not any(isinstance(m, _CONV) for m in module.modules()) and not _follows_conv(named, layer):
            raise ValueError(f"Grad-CAM layer {layer!r} is not (the activation of) a Conv1d / Conv3d layer.")
        return layer, module
    convs = [i for i, (_, m) in enumerate(named) if isinstance(m, _CONV)]
    if not convs:
        raise ValueError(
            f"Grad-CAM needs a convolutional model (nn.Conv1d layers over time, e.g. 'stdnn', or "
            f"nn.Conv3d layers over a volume, e.g. 'cnn3d'); {type(model).__name__} has none."
        )
    i = convs[-1]
    j = i + 1
    if j < len(named) and isinstance(named[j][1], _NORM):
        j += 1
    if j < len(named) and isinstance(named[j][1], nn.ReLU):
        return named[j]
    return named[i]


def _follows_conv(named, layer: str) -> bool:
    names = [n for n, _ in named]
    i = names.index(layer)
    if not isinstance(named[i][1], nn.ReLU) or i == 0:
        return False
    j = i - 1
    if isinstance(named[j][1], _NORM) and j > 0:
        j -= 1
    return isinstance(named[j][1], _CONV)


def gradcam(model, inputs, target, baseline=0.0, layer: str | None = None,
            relu_attributions: bool = True, interpolate_mode: str = "linear"):
    """Grad-CAM over time (1D convolutions) or over a volume (3D convolutions).

    Captum's ``LayerGradCam`` weights each channel ``k`` of the layer's output ``A`` by its
    gradient averaged over the layer's positions and sums over channels (Selvaraju et al.,
    2017, §3, Eq. 1-2; Kan et al. 2020, §3.3, Eq. 6-7), with the ReLU of Eq. 2 / 7 when
    ``relu_attributions``; the map is then upsampled with ``LayerAttribution.interpolate``.

    - stdnn (``A`` of shape ``(batch, channels, time')``): the curve ``(batch, 1, time')`` is
      upsampled to the input length and repeated over the features.
    - Volume models (``cnn3d``, ``A`` of shape ``(batch, channels, x', y', z')``): the map
      ``(batch, 1, x', y', z')`` is upsampled to the model's grid and flattened to
      ``(batch, 1, X*Y*Z)`` (Kan et al. 2020: "upsampled m_c to the input image resolution using
      trilinear interpolation").

    ``interpolate_mode``: ``"linear"`` (linear along time, trilinear for volumes),
    ``"trilinear"`` (the same, named for volumes) or ``"nearest"``.
    """
    _check_inputs(inputs, "gradcam")
    if interpolate_mode not in ("linear", "trilinear", "nearest"):
        raise ValueError(
            f"gradcam interpolate_mode must be 'linear', 'trilinear' or 'nearest', got {interpolate_mode!r}."
        )
    grid = volume_grid(model, inputs, "gradcam")
    _, module = last_conv_layer(model, layer)
    cam = LayerGradCam(model, module).attribute(inputs, target=target,
                                                relu_attributions=bool(relu_attributions))
    if grid is not None:
        if cam.ndim != 5 or cam.shape[1] != 1:
            raise ValueError(f"gradcam expected a (batch, 1, x, y, z) activation map, got {tuple(cam.shape)}.")
        mode = "nearest" if interpolate_mode == "nearest" else "trilinear"
        if tuple(cam.shape[2:]) != grid:
            cam = LayerAttribution.interpolate(cam, grid, interpolate_mode=mode)
        return cam.reshape(len(inputs), 1, -1).contiguous().detach()
    if cam.ndim != 3 or cam.shape[1] != 1:
        raise ValueError(f"gradcam expected a (batch, 1, time) activation map, got {tuple(cam.shape)}.")
    T, F = inputs.shape[1], inputs.shape[2]
    mode = "nearest" if interpolate_mode == "nearest" else "linear"
    if cam.shape[2] != T:
        cam = LayerAttribution.interpolate(cam, (T,), interpolate_mode=mode)
    return cam.transpose(1, 2).expand(-1, T, F).contiguous().detach()


def guidedgradcam(model, inputs, target, baseline=0.0, layer: str | None = None,
                  interpolate_mode: str = "linear"):
    """Guided Grad-CAM: Guided Backpropagation x upsampled Grad-CAM (Selvaraju et al., 2017, §3).

    Composed by hand because Captum's ``GuidedGradCam`` upsamples along the wrong axis for
    ``(batch, time, features)`` inputs (see the module docstring); for volume models both maps
    are ``(batch, 1, X*Y*Z)`` and the product is voxel-wise.
    """
    cam = gradcam(model, inputs, target, layer=layer, relu_attributions=True,
                  interpolate_mode=interpolate_mode)
    return (guidedbackprop(model, inputs, target) * cam).detach()


# --------------------------------------------------------------------------- perturbation methods


def occlusion(model, inputs, target, baseline=0.0, window: tuple[int, int] = (10, 1),
              stride: tuple[int, int] = (5, 1), perturbations_per_eval: int = 16,
              patch: int | tuple[int, int, int] = 6, patch_stride: int | tuple[int, int, int] = 3):
    """Occlusion with sliding patches (Zeiler & Fergus, 2014, §4.2); Captum ``Occlusion``.

    A patch is replaced by the baseline and the drop of the target logit is spread over the
    patch (averaged where patches overlap), ``perturbations_per_eval`` patches per forward pass.

    - Timeseries: a ``window = (time, features)`` patch moved by ``stride``; windows longer than
      the input are clipped to it. ``patch`` and ``patch_stride`` are ignored.
    - Volume models (``cnn3d``): cubes of ``patch`` voxels (an int, or three for ``X, Y, Z``)
      moved by ``patch_stride`` voxels (at most the patch size) over the model's grid, through
      a wrapper that gives Captum the volume ``(batch, 1, X, Y, Z)``; the map is flattened back
      to ``(batch, 1, X*Y*Z)``. Where the stride does not fit an axis, Captum adds a last patch
      clipped at the far edge, so every voxel is covered. Defaults: 6-voxel cubes with stride
      3 (half overlap: about 7,500 patches, i.e. forward passes per sample, on a
      ``57 x 69 x 60`` grid; ``patch_stride=6`` needs 8 times fewer). ``window`` and
      ``stride`` are ignored.
    """
    _check_inputs(inputs, "occlusion")
    ppe = _check_positive_int(perturbations_per_eval, "perturbations_per_eval")
    grid = volume_grid(model, inputs, "occlusion")
    if grid is not None:
        w = (1,) + _cube(patch, "occlusion patch", grid)
        s = (1,) + _cube(patch_stride, "occlusion patch_stride", grid)
        if any(st > pw and pw < g for st, pw, g in zip(s[1:], w[1:], grid)):
            raise ValueError(f"occlusion patch_stride {s[1:]} is larger than the patch {w[1:]}: voxels "
                             "between patches would never be occluded.")
        batch = len(inputs)
        base = baseline_value(baseline, inputs)
        if isinstance(base, torch.Tensor):
            base = base.reshape(-1, 1, *grid)

        def forward(volumes):
            return model(volumes.reshape(len(volumes), 1, -1))

        out = Occlusion(forward).attribute(
            inputs.reshape(batch, 1, *grid), sliding_window_shapes=w, strides=s, baselines=base,
            target=target, perturbations_per_eval=ppe,
        )
        return out.reshape(batch, 1, -1).detach()
    T, F = inputs.shape[1], inputs.shape[2]
    window, stride = tuple(window), tuple(stride)
    if len(window) != 2 or len(stride) != 2:
        raise ValueError(f"occlusion window and stride are (time, features) pairs, got {window} and {stride}.")
    w = tuple(min(_check_positive_int(v, "occlusion window"), n) for v, n in zip(window, (T, F)))
    s = tuple(min(_check_positive_int(v, "occlusion stride"), n) for v, n in zip(stride, (T, F)))
    return Occlusion(model).attribute(
        inputs, sliding_window_shapes=w, strides=s, baselines=baseline_value(baseline, inputs),
        target=target, perturbations_per_eval=ppe,
    ).detach()


def ablation(model, inputs, target, baseline=0.0, feature_mask=None, perturbations_per_eval: int = 16,
             block_size: int | tuple[int, int, int] = 6):
    """Feature ablation (Captum ``FeatureAblation``; Kokhlikyan et al., 2020).

    Each group of ``feature_mask`` is replaced by the baseline at once and the drop of the target
    logit is assigned to all its elements.

    - Timeseries: default one group per feature (region) over all time points; a
      ``(n_features,)`` mask groups regions (e.g. atlas networks), a ``(time, features)`` mask
      any elements. ``block_size`` is ignored.
    - Volume models (``cnn3d``): ``feature_mask`` is the path of a NIfTI label image on the
      model's grid (atlas regions: one value per region; its array shape must equal
      ``model.grid``, checked) or an array of that shape (or flattened); every label, 0
      included, is one group. Default (None): cubic blocks of ``block_size`` voxels (6:
      about 1,200 blocks, i.e. forward passes, on a ``57 x 69 x 60`` grid), not one group per
      voxel, which would take one forward pass per voxel (see :func:`volume_feature_mask`).
    """
    _check_inputs(inputs, "ablation")
    return FeatureAblation(model).attribute(
        inputs, baselines=baseline_value(baseline, inputs), target=target,
        feature_mask=_group_mask(feature_mask, inputs, model, block_size, "ablation"),
        perturbations_per_eval=_check_positive_int(perturbations_per_eval, "perturbations_per_eval"),
    ).detach()


def shapleysampling(model, inputs, target, baseline=0.0, n_samples: int = 25, feature_mask=None,
                    perturbations_per_eval: int = 16, seed: int = 0,
                    block_size: int | tuple[int, int, int] = 6):
    """Shapley value sampling (Castro et al., 2009; Strumbelj & Kononenko, 2010).

    Captum ``ShapleyValueSampling`` over ``n_samples`` random feature orderings; players are the
    groups of ``feature_mask`` (default: one per feature over all time, as in :func:`ablation`;
    for volume models a label image or, by default, blocks of ``block_size`` voxels, as in
    :func:`ablation`), absent players take the baseline. ``seed`` fixes the orderings. Cost:
    ``n_samples`` forward passes per group.
    """
    _check_inputs(inputs, "shapleysampling")
    mask = _group_mask(feature_mask, inputs, model, block_size, "shapleysampling")
    with _seeded(seed, inputs.device):
        return ShapleyValueSampling(model).attribute(
            inputs, baselines=baseline_value(baseline, inputs), target=target,
            feature_mask=mask,
            n_samples=_check_positive_int(n_samples, "shapleysampling n_samples"),
            perturbations_per_eval=_check_positive_int(perturbations_per_eval, "perturbations_per_eval"),
        ).detach()


def gradientshap(model, inputs, target, baseline=0.0, n_samples: int = 20, stdevs: float = 0.0,
                 seed: int = 0):
    """GradientSHAP / expected gradients (Lundberg & Lee, 2017); Captum ``GradientShap``.

    ``n_samples`` random points on the paths from the baseline to the inputs (plus Gaussian noise
    of SD ``stdevs``); gradients there times ``inputs - baseline``. A scalar baseline is expanded
    to a constant series. ``seed`` fixes the draws.
    """
    _check_inputs(inputs, "gradientshap")
    if not (isinstance(stdevs, (int, float)) and stdevs >= 0):
        raise ValueError(f"gradientshap stdevs must be >= 0, got {stdevs!r}.")
    base = baseline_value(baseline, inputs)
    if not isinstance(base, torch.Tensor):
        base = torch.full((1,) + tuple(inputs.shape[1:]), base, device=inputs.device, dtype=inputs.dtype)
    with _seeded(seed, inputs.device):
        return GradientShap(model).attribute(
            inputs, baselines=base, target=target,
            n_samples=_check_positive_int(n_samples, "gradientshap n_samples"), stdevs=float(stdevs),
        ).detach()


def smoothgrad(model, inputs, target, baseline=0.0, n_samples: int = 25, sigma: float = 0.5,
               abs: bool = True, seed: int = 0):  # noqa: A002
    """SmoothGrad: saliency averaged over noisy copies (Smilkov et al., 2017, §3).

    Captum ``NoiseTunnel(Saliency)`` with ``nt_type="smoothgrad"``, ``n_samples`` copies and
    Gaussian noise of SD ``sigma``. xaibids standardizes every feature (z-scores), so the
    default ``sigma = 0.5`` is 10 % of a ``±2.5`` SD range, within the 10-20 % of the input range
    Smilkov et al. recommend (§4.2). ``abs`` as in :func:`saliency`; ``seed`` fixes the noise.
    """
    _check_inputs(inputs, "smoothgrad")
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise ValueError(f"smoothgrad sigma must be positive, got {sigma!r}.")
    with _seeded(seed, inputs.device):
        return NoiseTunnel(Saliency(model)).attribute(
            inputs, nt_type="smoothgrad", nt_samples=_check_positive_int(n_samples, "smoothgrad n_samples"),
            stdevs=float(sigma), target=target, abs=bool(abs),
        ).detach()


# --------------------------------------------------------------------------- relevance propagation


def lrp_supported(model: nn.Module) -> list[str]:
    """Names of the leaf-module types of ``model`` that LRP has no rule for (empty: supported)."""
    bad = set()
    for m in model.modules():
        if len(list(m.children())) > 0:
            continue
        if not isinstance(m, _LRP_NONLINEAR + _LRP_EPSILON_EXTRA + _LRP_CAPTUM):
            bad.add(type(m).__name__)
    return sorted(bad)


def lrp(model, inputs, target, baseline=0.0, epsilon: float = 1e-9):
    """Layer-wise relevance propagation, epsilon rule (Bach et al., 2015, Eq. 58); Captum ``LRP``.

    Supported: models built only from ``Linear``, ``Conv1d``/``Conv2d``/``Conv3d``, pooling,
    ``BatchNorm2d``/``BatchNorm3d``, ``ReLU``, ``Tanh``, ``Dropout`` and identity layers -- the
    ``linear`` model (Gotsopoulos et al. 2018, §2.8), ``stdnn`` and ``cnn3d``. Every such layer gets the
    epsilon rule (``MaxPool3d`` is redistributed by Captum's own epsilon rule, which passes the
    relevance to the maximal input; an eval-mode batch norm is an affine map per channel, so
    its epsilon rule is that of a linear layer). A model with other layers (the LSTM of
    ``lstm-attn``) raises a ValueError.
    """
    _check_inputs(inputs, "lrp")
    bad = lrp_supported(model)
    if bad:
        raise ValueError(
            f"LRP has no propagation rule for layer type(s) {', '.join(bad)} of {type(model).__name__}; "
            "it supports the 'linear', 'stdnn' and 'cnn3d' models (Linear, Conv1d/Conv3d, batch norm, "
            "pooling, ReLU layers)."
        )
    if not (isinstance(epsilon, (int, float)) and epsilon > 0):
        raise ValueError(f"lrp epsilon must be positive, got {epsilon!r}.")
    for m in model.modules():
        if len(list(m.children())) == 0 and not isinstance(m, _LRP_NONLINEAR):
            m.rule = EpsilonRule(epsilon=float(epsilon))
    try:
        return LRP(model).attribute(inputs, target=target).detach()
    finally:  # Captum removes the rules itself; make sure no attribute is left on failure
        for m in model.modules():
            if hasattr(m, "rule"):
                del m.rule


# --------------------------------------------------------------------------- linear model (Gotsopoulos et al. 2018)


def weight(model, inputs, target, baseline=0.0):
    """``W``: the linear classifier's weights of the target class (Gotsopoulos et al. 2018 §2.8; Pereira et al., 2009).

    The same map for every sample of a class, reshaped to ``(time, features)``.
    """
    _check_inputs(inputs, "weight")
    layer = _linear_weights(model, "weight")
    t = _target_rows(target, len(inputs), inputs.device)
    return layer.weight.detach()[t].reshape(inputs.shape).clone()


def weightxinput(model, inputs, target, baseline=0.0):
    """``W x X``: weights times input (activation) (Gotsopoulos et al. 2018 §2.8; Polyn et al., 2005)."""
    return weight(model, inputs, target) * inputs.detach()


def outputdiff(model, inputs, target, baseline=0.0, perturbations_per_eval: int = 64):
    """Output difference ``OD`` (Gotsopoulos et al. 2018, §2.8): softmax output minus output without one input.

    Every input element (time point x feature) is "removed" (set to 0, the training mean of the
    standardized data) in turn; the map is the resulting drop of the target class's softmax
    probability, in ``[-1, 1]``. Captum ``FeatureAblation`` on the softmax output, costing one
    forward pass per element (``time x features``), batched ``perturbations_per_eval`` at a time.
    The baseline argument is ignored: removal means zero, as in the seed. Volume models are
    refused (a forward pass per voxel); use ``ablation`` with a label image there.
    """
    _check_inputs(inputs, "outputdiff")
    if getattr(model, "grid", None) is not None:
        raise ValueError(
            "outputdiff removes one input element per forward pass (one per voxel for a volume "
            "model); use 'ablation' with an atlas label image or blocks for volume models."
        )

    def probabilities(x):
        return torch.softmax(model(x), dim=1)

    return FeatureAblation(probabilities).attribute(
        inputs, baselines=0.0, target=target,
        perturbations_per_eval=_check_positive_int(perturbations_per_eval, "perturbations_per_eval"),
    ).detach()
