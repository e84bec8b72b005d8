"""Meaningful Perturbation for volume models (Fong & Vedaldi, 2017; Kan et al. 2020, §3.3, Eq. 1-3).

Captum has no Meaningful Perturbation, so it is written here. The method looks for the smallest
region whose deletion -- replacement by a blurred copy of the image -- makes the model lose its
confidence in the explained class. Following Kan et al. 2020 (§3.3):

- Eq. 1, perturbation: ``P(x; M) = x ⊙ M + (g_σ0 * x) ⊙ (1 - M)``, ``g_σ0`` a 3D Gaussian
  kernel; ``M = 1`` keeps a voxel, ``M = 0`` replaces it by the blurred image.
- The mask is optimized at low resolution: ``m`` has ``1 / s`` of the grid's size per axis,
  ``M = g_σm * Up(m, s)`` is its trilinear upsampling to the grid, smoothed with a Gaussian.
- Eq. 2, jitter: the image is padded with ``j`` zeros at the end of each axis and cropped at
  a random offset ``K ~ U{0, ..., j-1}`` (the same ``K`` on the three axes, as in Eq. 2); the
  score term is averaged over ``n_jitter`` draws per iteration (seed: 10 draws).
- Eq. 3, objective: ``E_K[f_c(P(x^K; M))] + λ2 TV_β(M) + λ1 ‖1 - m‖₁`` with ``f_c`` the
  softmax probability of the explained class, minimized with Adam.

Hyper-parameters (Kan et al. 2020, §3.3, found there by an ablation study): ``σ0 = σm = 10``,
``λ1 = 3``, ``λ2 = 1``, ``β = 7``, ``s = 4``, ``j = 5``, 10 jitter draws, Adam with learning rate
``0.3`` and ``(β1, β2) = (0.9, 0.99)``. What the paper leaves open is taken from the authors'
published code (``InterpretableNeuroDL``, ``masks/meanpertrub.py``, linked from Kan et al. 2020 §1):

- the mask starts at ``m = 1`` (nothing deleted) and is clipped to ``[0, 1]`` after each step;
- both Gaussian kernels are ``kernel_size = 5`` voxels wide, so with ``σ = 10`` they are nearly
  5-voxel box filters (a wider kernel gives a true ``σ = 10`` Gaussian);
- the L1 and TV terms are means over voxels (``λ1 mean|1 - m|``, and the TV term is the sum over
  the three axes of the mean of ``|M(u + e_axis) - M(u)|^β``), so the weights do not depend on
  the grid size;
- the learning rate is divided by 10 every 30 iterations (``lr_step``); the authors run 300
  iterations, after which with this decay the mask has long stopped moving, so the default
  here is ``n_iter = 100`` (the learning rate is ``3e-4`` from iteration 90 on).

Not taken from the code: its warm-up of the penalty weights, its floor of 0.05 on the
probability and its "best loss" mask selection (which depends on the random jitter); the mask of
the last iteration is returned. The map is ``1 - m`` upsampled (trilinearly) to the grid, as in
the authors' code: high values mark the voxels whose deletion lowers the class probability.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F  # noqa: N812

from xaibids.attribution.methods import _check_inputs, _check_positive_int, _target_rows, volume_grid

__all__ = ["gaussian_blur3d", "meaningful_perturbation", "total_variation"]


def gaussian_blur3d(volume: torch.Tensor, sigma: float, kernel_size: int) -> torch.Tensor:
    """Separable 3D Gaussian blur of ``(n, 1, X, Y, Z)`` volumes (edges replicated).

    The kernel has ``kernel_size`` taps per axis (odd), weights ``exp(-r² / 2σ²)`` normalized to
    sum 1. Edge voxels are replicated rather than zero-padded, so a constant volume (a mask of
    ones) stays constant.
    """
    half = kernel_size // 2
    r = torch.arange(-half, half + 1, dtype=volume.dtype, device=volume.device)
    k = torch.exp(-(r * r) / (2.0 * float(sigma) ** 2))
    k = k / k.sum()
    out = volume
    for axis in range(3):
        shape = [1, 1, 1, 1, 1]
        shape[2 + axis] = kernel_size
        pad = [0, 0, 0, 0, 0, 0]
        pad[2 * (2 - axis)] = pad[2 * (2 - axis) + 1] = half  # F.pad lists the last axis first
        out = F.conv3d(F.pad(out, pad, mode="replicate"), k.reshape(shape))
    return out


def total_variation(mask: torch.Tensor, beta: float) -> torch.Tensor:
    """``sum over axes of mean |M(u + e_axis) - M(u)|^β`` of ``(n, 1, X, Y, Z)`` masks (per mask)."""
    tv = 0.0
    for axis in (2, 3, 4):
        d = torch.diff(mask, dim=axis).abs()
        if d.numel():
            tv = tv + d.pow(beta).flatten(1).mean(dim=1)
    return tv if isinstance(tv, torch.Tensor) else torch.zeros(len(mask), device=mask.device)


def _positive(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"mp {name} must be a positive number, got {value!r}.")
    return float(value)


def _non_negative(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
            or not math.isfinite(value) or value < 0:
        raise ValueError(f"mp {name} must be a number >= 0, got {value!r}.")
    return float(value)


def meaningful_perturbation(
    model,
    inputs,
    target,
    baseline=0.0,
    n_iter: int = 100,
    lr: float = 0.3,
    lr_step: int | None = 30,
    l1_coef: float = 3.0,
    tv_coef: float = 1.0,
    tv_beta: float = 7.0,
    mask_scale: int = 4,
    blur_sigma: float = 10.0,
    mask_sigma: float = 10.0,
    kernel_size: int = 5,
    jitter: int = 5,
    n_jitter: int = 10,
    seed: int = 0,
) -> torch.Tensor:
    """Meaningful Perturbation maps of volumes (Kan et al. 2020, §3.3, Eq. 1-3; Fong & Vedaldi, 2017).

    Hand-written (Captum has no Meaningful Perturbation); see the module docstring for the
    objective and where each default comes from. Each sample gets its own mask, optimized
    independently of the others in the batch (the ``n_jitter`` jittered copies of one sample go
    through the model as one batch).

    Parameters
    ----------
    model : torch.nn.Module
        A volume model (a ``grid`` attribute, e.g. ``cnn3d``) in ``eval()`` mode; its parameters
        are not touched (gradients are taken with respect to the mask only).
    inputs : torch.Tensor of shape (batch, 1, X*Y*Z)
        Flattened volumes.
    target : torch.Tensor of shape (batch,) or int
        Class whose probability the deletion should lower (the true class in xaibids).
    baseline
        Ignored: the reference is the blurred image (Eq. 1).
    n_iter : int, default=100
        Adam iterations per sample.
    lr : float, default=0.3
        Adam learning rate (Kan et al. 2020, §3.3); Adam's ``betas = (0.9, 0.99)`` (Kan et al. 2020).
    lr_step : int or None, default=30
        Divide the learning rate by 10 every ``lr_step`` iterations (the authors' code); None
        keeps it constant.
    l1_coef : float, default=3.0
        ``λ1``, weight of the mean deletion ``mean|1 - m|`` (Kan et al. 2020).
    tv_coef : float, default=1.0
        ``λ2``, weight of the total variation of ``M`` (Kan et al. 2020).
    tv_beta : float, default=7.0
        ``β``, exponent of the total variation (Kan et al. 2020).
    mask_scale : int, default=4
        ``s``, upsampling factor from the mask to the grid (Kan et al. 2020); the mask has
        ``ceil(size / s)`` voxels per axis.
    blur_sigma : float, default=10.0
        ``σ0`` of the image blur (Kan et al. 2020), in voxels.
    mask_sigma : float, default=10.0
        ``σm`` of the mask smoothing (Kan et al. 2020), in voxels.
    kernel_size : int, default=5
        Width in voxels (odd) of both Gaussian kernels (the authors' code).
    jitter : int, default=5
        ``j``, padding of the jitter; offsets ``K`` are drawn from ``0..j-1`` (Kan et al. 2020). 1
        disables the jitter.
    n_jitter : int, default=10
        Draws of ``K`` per iteration, averaged in the score term (Kan et al. 2020: 10).
    seed : int, default=0
        Seed of the jitter draws (a private generator per sample, so a sample's map does not
        depend on the rest of the batch or on the global random state).

    Returns
    -------
    torch.Tensor of shape (batch, 1, X*Y*Z)
        ``1 - m`` upsampled to the grid, in ``[0, 1]`` (detached, on the inputs' device).
    """
    _check_inputs(inputs, "mp")
    grid = volume_grid(model, inputs, "mp")
    if grid is None:
        raise ValueError(
            f"Meaningful Perturbation (mp) needs a volume model with a 'grid' attribute (cnn3d); "
            f"{type(model).__name__} has none."
        )
    n_iter = _check_positive_int(n_iter, "mp n_iter")
    lr = _positive(lr, "lr")
    if lr_step is not None:
        lr_step = _check_positive_int(lr_step, "mp lr_step")
    l1_coef, tv_coef = _non_negative(l1_coef, "l1_coef"), _non_negative(tv_coef, "tv_coef")
    tv_beta = _positive(tv_beta, "tv_beta")
    mask_scale = _check_positive_int(mask_scale, "mp mask_scale")
    blur_sigma, mask_sigma = _positive(blur_sigma, "blur_sigma"), _positive(mask_sigma, "mask_sigma")
    kernel_size = _check_positive_int(kernel_size, "mp kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"mp kernel_size must be odd, got {kernel_size}.")
    jitter = _check_positive_int(jitter, "mp jitter")
    n_jitter = _check_positive_int(n_jitter, "mp n_jitter")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"mp seed must be an integer, got {seed!r}.")

    batch = len(inputs)
    targets = _target_rows(target, batch, inputs.device)
    low = tuple(max(1, -(-g // mask_scale)) for g in grid)
    X, Y, Z = grid
    maps = []
    for i in range(batch):
        volume = inputs[i].detach().reshape(1, 1, *grid)
        padded = F.pad(volume, (0, jitter - 1, 0, jitter - 1, 0, jitter - 1))  # offsets 0..j-1
        shifted = torch.cat([padded[..., k:k + X, k:k + Y, k:k + Z] for k in range(jitter)])
        blurred = gaussian_blur3d(shifted, blur_sigma, kernel_size)
        generator = torch.Generator().manual_seed(int(seed))
        mask = torch.ones((1, 1, *low), device=inputs.device, dtype=inputs.dtype, requires_grad=True)
        optimizer = torch.optim.Adam([mask], lr=lr, betas=(0.9, 0.99))
        scheduler = (torch.optim.lr_scheduler.StepLR(optimizer, step_size=lr_step, gamma=0.1)
                     if lr_step is not None else None)
        t = int(targets[i])
        for _ in range(n_iter):
            upsampled = F.interpolate(mask, size=grid, mode="trilinear", align_corners=False)
            smooth = gaussian_blur3d(upsampled, mask_sigma, kernel_size)
            k = torch.randint(jitter, (n_jitter,), generator=generator).to(inputs.device)
            perturbed = shifted[k] * smooth + blurred[k] * (1.0 - smooth)
            probability = torch.softmax(model(perturbed.reshape(n_jitter, 1, -1)), dim=1)[:, t].mean()
            loss = (probability + l1_coef * (1.0 - mask).abs().mean()
                    + tv_coef * total_variation(smooth, tv_beta).sum())
            (grad,) = torch.autograd.grad(loss, mask)
            optimizer.zero_grad(set_to_none=True)
            mask.grad = grad
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            with torch.no_grad():
                mask.clamp_(0.0, 1.0)
        with torch.no_grad():
            result = 1.0 - F.interpolate(mask.detach(), size=grid, mode="trilinear", align_corners=False)
        maps.append(result.reshape(1, 1, -1))
    return torch.cat(maps).detach()
