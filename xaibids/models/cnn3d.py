"""Light 3D convolutional network for T1 volumes (Kan et al. 2020, §3.2).

Kan et al. 2020 (§3.2) reproduces the 3D CNN of Xin et al. (2019) on T1 images resampled to
``[58, 70, 58]``: "three hidden layers, thus it is light, fast in training, and easy to
interpret". The paper gives no layer details; the authors' published code
(``InterpretableNeuroDL``, ``mri_model.py``, linked from Kan et al. 2020 §1) builds each hidden layer as
``Conv3d(kernel 3) -> BatchNorm3d -> ReLU -> MaxPool3d(2)`` with ``c, 2c, 4c`` channels
(``c = 32``), then flattens, applies dropout ``p = 0.5`` and one linear layer (log-softmax). This
module follows that layout with three deviations, each an option:

- ``channels`` defaults to ``(8, 16, 32)`` instead of ``(32, 64, 128)``: about 16 times fewer
  multiply-adds, so that ensembles train and are attributed on a 2-core CPU at the default
  ``~57 x 69 x 60`` grid (pass ``channels=(32, 64, 128)`` for the seed's width).
- ``padding="same"`` (zero padding ``kernel_size // 2``) instead of the seed's unpadded
  convolutions: grids as small as ``8 x 8 x 8`` work (the tests use ``12 x 14 x 12``), voxels on
  the grid's border reach the classifier, and Grad-CAM's last feature maps keep a finer
  resolution. ``padding="valid"`` gives the seed's layers.
- The model returns logits, as every xaibids model (the ensemble applies the cross-entropy).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

#: Spatial downsampling of the three max-pooling layers together (each halves every axis).
_N_BLOCKS = 3


def _check_grid(grid) -> tuple[int, int, int]:
    if grid is None:
        raise ValueError(
            "cnn3d needs the model option grid=(X, Y, Z), the shape of the volume grid its "
            "flattened inputs come from (n_features = X * Y * Z, C order)."
        )
    if isinstance(grid, (str, bytes)) or not hasattr(grid, "__len__") or len(grid) != 3:
        raise ValueError(f"cnn3d option grid must be three positive integers (X, Y, Z), got {grid!r}.")
    out = []
    for v in grid:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"cnn3d option grid must be three positive integers (X, Y, Z), got {grid!r}.")
        out.append(int(v))
    return tuple(out)


class CNN3D(nn.Module):
    """Three-block 3D CNN for flattened volumes ``(batch, 1, X*Y*Z)`` (Kan et al. 2020, §3.2).

    Each block is ``Conv3d -> BatchNorm3d -> ReLU -> MaxPool3d(2)``; the output of the third
    block is flattened, passed through dropout and a linear layer giving the logits. The input
    ``(batch, 1, n_features)`` -- one "time point" holding the C-order flattening of the grid,
    as the ensemble hands samples to every model -- is reshaped to ``(batch, 1, X, Y, Z)``.

    Parameters
    ----------
    n_features : int
        Voxels per volume; must equal ``X * Y * Z``.
    n_timepoints : int
        Must be 1 (a volume is one sample of shape ``(1, n_features)``).
    n_classes : int
        Number of output classes (logits).
    grid : tuple of 3 int
        Shape ``(X, Y, Z)`` of the (cropped template) grid the features were flattened from, in
        C order. Required; kept as the tuple :attr:`grid`, which attribution methods use to
        reshape maps (3D Grad-CAM, occlusion cubes, ablation regions, Meaningful Perturbation).
    channels : tuple of 3 int, default=(8, 16, 32)
        Output channels of the three convolutions (Kan et al. 2020's code: ``(32, 64, 128)``).
    kernel_size : int, default=3
        Cubic kernel width of the convolutions (Kan et al. 2020's code: 3).
    padding : {"same", "valid"}, default="same"
        ``"same"``: zero padding of ``kernel_size // 2`` voxels (odd kernels keep the size);
        ``"valid"``: no padding, as the seed's code.
    dropout : float, default=0.5
        Dropout before the linear classifier (Kan et al. 2020's code: 0.5). Inactive in ``eval()``.
    head : {"flatten", "gap"}, default="flatten"
        What the classifier sees of the third block: every position (Kan et al. 2020's code), or the
        global average of each channel (``gap``; Zhou et al., 2016). With ``gap`` the logit is
        linear in the last activations averaged over space, so Grad-CAM reduces to the class
        activation map of that paper and localizes by construction.

    Attributes
    ----------
    grid : tuple of int
        ``(X, Y, Z)``.
    feature_shape : tuple of int
        Shape ``(channels[-1], x, y, z)`` of the last block's output (the classifier's input).
    """

    def __init__(
        self,
        n_features: int,
        n_timepoints: int,
        n_classes: int,
        grid: tuple[int, int, int] | None = None,
        channels: tuple[int, int, int] = (8, 16, 32),
        kernel_size: int = 3,
        padding: str = "same",
        dropout: float = 0.5,
        head: str = "flatten",
    ) -> None:
        super().__init__()
        grid = _check_grid(grid)
        if n_timepoints != 1:
            raise ValueError(
                f"cnn3d takes one volume per sample (n_timepoints = 1), got n_timepoints={n_timepoints}."
            )
        if n_features != int(np.prod(grid)):
            raise ValueError(
                f"cnn3d grid {grid} has {int(np.prod(grid))} voxels but n_features={n_features}; "
                "the features must be the C-order flattening of the grid."
            )
        channels = tuple(channels) if not isinstance(channels, (str, bytes)) else channels
        if (not isinstance(channels, tuple) or len(channels) != _N_BLOCKS
                or not all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c > 0
                           for c in channels)):
            raise ValueError(f"cnn3d option channels must be three positive integers, got {channels!r}.")
        channels = tuple(int(c) for c in channels)
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, (int, np.integer)) or kernel_size < 1:
            raise ValueError(f"cnn3d option kernel_size must be a positive integer, got {kernel_size!r}.")
        kernel_size = int(kernel_size)
        if padding not in ("same", "valid"):
            raise ValueError(f"cnn3d option padding must be 'same' or 'valid', got {padding!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"cnn3d option dropout must be in [0, 1), got {dropout!r}.")
        if head not in ("flatten", "gap"):
            raise ValueError(f"cnn3d option head must be 'flatten' or 'gap', got {head!r}.")
        self.head = head
        pad = kernel_size // 2 if padding == "same" else 0
        size = list(grid)
        for _ in range(_N_BLOCKS):
            conv = [s + 2 * pad - kernel_size + 1 for s in size]
            if min(conv) < 1:
                raise ValueError(
                    f"cnn3d grid {grid} is too small for three blocks of kernel {kernel_size} with "
                    f"padding {padding!r} and 2x max pooling; each axis needs at least "
                    f"{self._min_size(kernel_size, pad)} voxels."
                )
            size = [-(-c // 2) for c in conv]  # ceil mode: the last, odd voxel is pooled too
        self.n_features = int(n_features)
        self.n_timepoints = 1
        self.n_classes = int(n_classes)
        self.grid = grid
        blocks = []
        c_in = 1
        for c_out in channels:
            blocks.append(nn.Sequential(
                nn.Conv3d(c_in, c_out, kernel_size, padding=pad),
                nn.BatchNorm3d(c_out),
                nn.ReLU(),
                nn.MaxPool3d(2, ceil_mode=True),
            ))
            c_in = c_out
        self.block1, self.block2, self.block3 = blocks
        self.feature_shape = (channels[-1], *size)
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(int(np.prod(self.feature_shape)) if head == "flatten"
                                    else channels[-1], self.n_classes)

    @staticmethod
    def _min_size(kernel_size: int, pad: int) -> int:
        s = 1
        for _ in range(_N_BLOCKS):  # invert size -> ceil((size + 2 pad - k + 1) / 2) >= 1
            s = max(1, 2 * s - 1 + kernel_size - 1 - 2 * pad)
        return s

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for ``x`` of shape ``(batch, 1, X*Y*Z)``."""
        if x.ndim != 3 or x.shape[1] != 1 or x.shape[2] != self.n_features:
            raise ValueError(
                f"cnn3d expects input of shape (batch, 1, {self.n_features}) (a flattened "
                f"{self.grid} volume), got {tuple(x.shape)}."
            )
        h = x.reshape(x.shape[0], 1, *self.grid)
        h = self.block3(self.block2(self.block1(h)))
        h = h.flatten(1) if self.head == "flatten" else h.mean(dim=(2, 3, 4))
        return self.classifier(self.dropout(h))
