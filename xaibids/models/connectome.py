"""Connectome classifier: the correlation matrix of the regions' timecourses, computed inside the
network, and a linear classifier on its edges.

What a neuroimaging user fits first on resting-state timecourses is a logistic regression on the
vectorized correlation matrix (nilearn's :class:`~nilearn.connectome.ConnectivityMeasure`;
Abraham et al. 2017, Dadi et al. 2019); the deep models of xaibids see each region's own
dynamics (``region-cnn``) or mix regions in time (``stdnn``, ``lstm-attn``) and learn less than
that baseline on real resting-state data, where the signal is in the coupling of regions (ABIDE
diagnosis, leave-one-site-out: ``region-cnn`` 0.556, the baseline 0.618; docs/benchmarks.md,
"Real data: ABIDE with the connectome model"). This model is that baseline as a network: its first
layer computes each subject's correlation matrix from the standardized timecourses
(Fisher-z transformed and scaled by ``sqrt(time points - 3)``, so that an edge is the z statistic
of its correlation, about unit-scale whatever the run length, as the standardized features of a
logistic regression are; the lower triangle in nilearn's order), a linear layer classifies the
edges, read through a fixed factor ``1 / sqrt(edges)``. Adam moves every weight by about its
learning rate at each step whatever the gradient's size, so without that factor one step of the
default learning rate moved the logits of 19 900 CC200 edges by tens and the validation loss
that early stopping watches was 2-12 nats (ABIDE NYU and UM_1, exploratory runs); with it the
logits start near 0, move by a fraction per step, and the validation loss reads 0.55-0.67
(the ``1 / sqrt(fan-in)`` of PyTorch's default initialization, moved from the weights into the
forward pass, where Adam's step size cannot undo it). Because the correlation is a layer,
attributions (Captum's, like every model's) reach back to the timecourses, and so to regions and
time points, through it; :meth:`Connectome.edges` gives the edges themselves.

The correlation is regularized at the origin: ``c_ij / sqrt((c_ii + eps)(c_jj + eps))`` with
``c`` the covariance over time. The plain correlation is scale-invariant, so along Integrated
Gradients' straight path from the zero baseline it would be constant but for a jump at the
origin, and the path integral would be all numerical error; with ``eps`` the edge grows smoothly
from 0 at the baseline to (about) the correlation at the input (standardized inputs have a
variance about 1 per region, ``eps`` 0.1 of it). Nothing in PyTorch, nilearn or Captum provides
a differentiable correlation layer; it is written here.
"""

from __future__ import annotations

import torch
from torch import nn


class Connectome(nn.Module):
    """Correlation matrix of the input's features (Fisher z) and a linear classifier on its edges.

    Parameters
    ----------
    n_features : int
        Number of regions; the classifier sees ``n_features * (n_features - 1) / 2`` edges.
    n_timepoints : int
        Number of time steps, at least 2 (any length works; kept for the uniform
        :func:`xaibids.models.build_model` interface).
    n_classes : int
        Number of output classes (logits).
    eps : float, default=0.1
        Added to each region's variance in the correlation's denominator (module docstring).
    dropout : float, default=0.0
        Dropout on the edges before the classifier.
    ridge : float, default=1e-4
        Strength ``λ`` of a ridge penalty ``λ ||W||²`` on the classifier's weights, added to the
        training loss (:meth:`penalty`) and to the validation loss early stopping watches: with
        tens of thousands of edges for a few hundred subjects the unpenalized classifier fits
        noise (a logistic regression's L2 penalty). On ABIDE (NYU and UM_1, leave-one-site-out,
        3 models per fold, exploratory) 0 and 1e-4 gave a balanced accuracy of 0.61, 1e-3 0.565.
    """

    def __init__(self, n_features: int, n_timepoints: int, n_classes: int, eps: float = 0.1,
                 dropout: float = 0.0, ridge: float = 1e-4) -> None:
        super().__init__()
        if n_features < 2:
            raise ValueError(f"connectome needs at least 2 features (regions), got {n_features}.")
        if n_timepoints < 2:
            raise ValueError(f"connectome needs at least 2 time points for a correlation, got "
                             f"{n_timepoints}.")
        if not float(eps) > 0:
            raise ValueError(f"connectome option eps must be positive, got {eps!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"connectome option dropout must be in [0, 1), got {dropout!r}.")
        if not float(ridge) >= 0:
            raise ValueError(f"connectome option ridge must be >= 0, got {ridge!r}.")
        self.n_features = n_features
        self.n_timepoints = n_timepoints
        self.n_classes = n_classes
        self.eps = float(eps)
        self.ridge = float(ridge)
        n_edges = n_features * (n_features - 1) // 2
        self.readout = n_edges ** -0.5  # module docstring
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(n_edges, n_classes)
        # small, so that the logits start near 0, where a logistic regression starts
        nn.init.normal_(self.classifier.weight, std=0.01)
        nn.init.zeros_(self.classifier.bias)

    @property
    def penalized(self) -> bool:
        """Whether training adds :meth:`penalty` to the loss."""
        return self.ridge > 0

    def edges(self, x: torch.Tensor) -> torch.Tensor:
        """Fisher-z correlations ``(batch, edges)`` of ``x`` ``(batch, time, features)``, times
        ``sqrt(time - 3)``: the lower triangle row by row, the order of nilearn's
        ``sym_matrix_to_vec(..., discard_diagonal=True)``."""
        n_time = x.shape[1]
        centred = x - x.mean(dim=1, keepdim=True)
        cov = centred.transpose(1, 2) @ centred / n_time  # (batch, features, features)
        scale = torch.rsqrt(torch.diagonal(cov, dim1=1, dim2=2) + self.eps)
        corr = cov * scale.unsqueeze(2) * scale.unsqueeze(1)
        rows, cols = torch.tril_indices(self.n_features, self.n_features, offset=-1,
                                        device=x.device)
        fisher_z = torch.atanh(corr[:, rows, cols].clamp(-0.999, 0.999))
        return fisher_z * max(n_time - 3, 1) ** 0.5

    def penalty(self, classifier_weight: torch.Tensor | None = None) -> torch.Tensor:
        """The ridge term ``λ ||W||²`` (one per model for a stack ``(models, classes, edges)``)."""
        weight = self.classifier.weight if classifier_weight is None else classifier_weight
        return self.ridge * weight.pow(2).sum(dim=(-2, -1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for ``x`` of shape ``(batch, time, features)``."""
        return self.classifier(self.dropout(self.edges(x)) * self.readout)
