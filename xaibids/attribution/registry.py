"""Registry of attribution methods behind one call signature.

Every entry of :data:`METHODS` is a function
``method(model, inputs, target, baseline="zero", n_steps=50) -> Tensor`` returning a map of the
same shape as ``inputs`` (``(batch, time, features)``). The ensemble calls methods only through
:func:`attribute`, so adding a Captum method (DeepLIFT, Input x Gradient, ...; seed 001 Methods)
means adding one wrapper function and one registry entry.
"""

from __future__ import annotations

import torch

from xaibids.attribution.ig import integrated_gradients

METHODS = {
    "ig": integrated_gradients,
}


def attribute(
    method: str,
    model: torch.nn.Module,
    inputs: torch.Tensor,
    target: torch.Tensor | int,
    baseline="zero",
    n_steps: int = 50,
) -> torch.Tensor:
    """Compute attribution maps with a registered method.

    Parameters
    ----------
    method : str
        A key of :data:`METHODS` (currently ``"ig"``).
    model, inputs, target, baseline, n_steps
        As in :func:`xaibids.attribution.ig.integrated_gradients`.

    Returns
    -------
    torch.Tensor of shape (batch, n_timepoints, n_features)
    """
    if method not in METHODS:
        raise ValueError(
            f"Unknown attribution method {method!r}; available: {', '.join(sorted(METHODS))}."
        )
    return METHODS[method](model, inputs, target, baseline=baseline, n_steps=n_steps)
