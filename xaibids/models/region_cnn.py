"""Region-wise temporal CNN: one bank of temporal filters applied to every region on its own,
the log of each filter's mean power per region, and a linear classifier.

It is the shallow filter-bank design of Schirrmeister et al. 2017's ShallowConvNet (temporal
convolution, squaring, mean pooling, logarithm, linear classifier; §2.4.2), without its spatial
convolution: no layer mixes regions before the classifier, so a region's evidence is its own
band-limited power (amplitude and autocorrelation) and the classifier is a logistic regression
on ``regions × filters`` learned log-powers. With a few dozen subjects for a hundred regions,
a network that mixes all regions in its first layer (``stdnn``, ``lstm-attn``) spreads its
weights, and so its attributions, over every region and learns less than a logistic regression
on the regions' standard deviations (docs/benchmarks.md, "Defaults on the BOLD simulator");
this model is xaibids' default for that reason. Nothing in PyTorch or Captum provides it as a
module; it is written here.
"""

from __future__ import annotations

import torch
from torch import nn

#: Pooling of each filter's output over time: the log of its mean power (ShallowConvNet's
#: square, mean, log), or its mean after a ReLU.
POOLS = ("logpower", "relu")


class RegionCNN(nn.Module):
    """Shared temporal filters per region, log-power pooling and a linear classifier.

    Parameters
    ----------
    n_features : int
        Number of regions (features); each is filtered on its own.
    n_timepoints : int
        Number of time steps. Any length works (same padding, pooling over all time points);
        kept for the uniform :func:`xaibids.models.build_model` interface.
    n_classes : int
        Number of output classes (logits).
    filters : int, default=4
        Temporal filters in the bank, shared by all regions.
    kernel_size : int, default=5
        Length of the filters in time steps (zero "same" padding).
    pool : {"logpower", "relu"}, default="logpower"
        ``logpower``: ``log(mean_t h² + eps)`` of each filtered timecourse ``h``; ``relu``: the
        mean of ``max(h, 0)``.
    eps : float, default=0.01
        Added to the mean power before the logarithm (inputs are standardized, so their power is
        about 1); it keeps the logarithm and its gradient finite at an all-zero baseline.
    dropout : float, default=0.0
        Dropout on the ``regions × filters`` features before the classifier.
    sparsity : float, default=0.2
        Strength ``λ`` of a group-lasso penalty on the classifier (Yuan & Lin 2006):
        ``λ Σ_r ||W_r||₂``, where ``W_r`` holds the classifier's weights of region ``r`` (all its
        filters, all classes), added to the training loss (:meth:`penalty`). It drives the
        weights of regions whose evidence adds nothing to the others' towards zero, so the
        classifier relies on the regions where the class difference arises rather than on the
        regions they drive, and its attributions concentrate there.
    """

    def __init__(
        self,
        n_features: int,
        n_timepoints: int,
        n_classes: int,
        filters: int = 4,
        kernel_size: int = 5,
        pool: str = "logpower",
        eps: float = 0.01,
        dropout: float = 0.0,
        sparsity: float = 0.2,
    ) -> None:
        super().__init__()
        if not isinstance(filters, int) or filters < 1:
            raise ValueError(
                f"region-cnn option filters must be a positive integer, got {filters!r}.")
        if not isinstance(kernel_size, int) or kernel_size < 1:
            raise ValueError(
                f"region-cnn option kernel_size must be a positive integer, got {kernel_size!r}.")
        if pool not in POOLS:
            raise ValueError(
                f"region-cnn option pool must be one of {', '.join(POOLS)}, got {pool!r}.")
        if not float(eps) > 0:
            raise ValueError(f"region-cnn option eps must be positive, got {eps!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"region-cnn option dropout must be in [0, 1), got {dropout!r}.")
        if not float(sparsity) >= 0:
            raise ValueError(f"region-cnn option sparsity must be >= 0, got {sparsity!r}.")
        self.n_features = n_features
        self.n_timepoints = n_timepoints
        self.n_classes = n_classes
        self.filters = filters
        self.pool = pool
        self.eps = float(eps)
        self.sparsity = float(sparsity)
        # one filter bank over time for every region: a (1, kernel) 2D convolution of the
        # (regions, time) plane is a 1D convolution of each region on its own
        self.temporal = nn.Conv2d(1, filters, (1, kernel_size), padding=(0, kernel_size // 2))
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(n_features * filters, n_classes)

    def region_features(self, x: torch.Tensor) -> torch.Tensor:
        """The pooled filter outputs ``(batch, features, filters)`` of ``x``
        ``(batch, time, features)``."""
        h = self.temporal(x.transpose(1, 2).unsqueeze(1))  # (batch, filters, features, time)
        if self.pool == "logpower":
            pooled = torch.log(h.pow(2).mean(dim=-1) + self.eps)
        else:
            pooled = torch.relu(h).mean(dim=-1)
        return pooled.transpose(1, 2)

    @property
    def penalized(self) -> bool:
        """Whether training adds :meth:`penalty` to the loss."""
        return self.sparsity > 0

    def penalty(self, classifier_weight: torch.Tensor | None = None) -> torch.Tensor:
        """The group-lasso term ``λ Σ_r ||W_r||₂`` of ``sparsity`` (0 when it is 0).

        ``classifier_weight`` defaults to the model's own; a stack of them ``(models, classes,
        regions × filters)`` (batched training) gives one term per model.
        """
        weight = self.classifier.weight if classifier_weight is None else classifier_weight
        per_region = weight.unflatten(-1, (self.n_features, self.filters))  # (..., C, F, K)
        # vector_norm's gradient at an all-zero group is 0 (a subgradient), not NaN
        return self.sparsity * torch.linalg.vector_norm(per_region, dim=(-3, -1)).sum(dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for ``x`` of shape ``(batch, time, features)``."""
        return self.classifier(self.dropout(self.region_features(x).flatten(1)))
