"""Bidirectional LSTM with additive temporal attention (Lewis et al. 2023, §2.2).

Architecture of Rahman et al.'s "LSTM + attention" model: a bi-LSTM reads the timecourses, an
attention network of two feed-forward layers turns the concatenated forward/backward hidden state
of every time step into one score, the scores are soft-maxed over time, the hidden states are
summed with these weights and a linear layer classifies the summary. The attention path gives a
direct gradient route from the output to every input time step, which is what keeps saliency
from vanishing (Lewis et al. 2023, §2.2).
"""

from __future__ import annotations

import torch
from torch import nn


class LSTMAttention(nn.Module):
    """Bi-LSTM + additive attention classifier for ``(batch, time, features)`` input.

    Implements the model of Lewis et al. 2023, §2.2 (figure 1).

    Parameters
    ----------
    n_features : int
        Number of input features (regions or components) per time step.
    n_timepoints : int
        Number of time steps. The model itself handles any length; the value is accepted
        for a uniform :func:`xaibids.models.build_model` interface and kept as an attribute.
    n_classes : int
        Number of output classes (logits).
    hidden_size : int, default=64
        Hidden units of each LSTM direction; the attention context is ``2 * hidden_size``.
    attention_size : int, default=64
        Width of the hidden feed-forward layer of the attention network.
    num_layers : int, default=1
        Stacked LSTM layers.
    dropout : float, default=0.0
        Dropout on the attended summary before the classifier (and between LSTM layers
        when ``num_layers > 1``).

    Notes
    -----
    ``forward`` returns logits of shape ``(batch, n_classes)``. The attention weights of the
    last forward pass are kept in ``self.last_attention`` (``(batch, time)``, detached) for
    inspection.
    """

    def __init__(
        self,
        n_features: int,
        n_timepoints: int,
        n_classes: int,
        hidden_size: int = 64,
        attention_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        for name, value in (("hidden_size", hidden_size), ("attention_size", attention_size),
                            ("num_layers", num_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"lstm-attn option {name} must be a positive integer, got {value!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"lstm-attn option dropout must be in [0, 1), got {dropout!r}.")
        self.n_features = n_features
        self.n_timepoints = n_timepoints
        self.n_classes = n_classes
        self.lstm = nn.LSTM(
            input_size=n_features,
            hidden_size=hidden_size,
            num_layers=num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=float(dropout) if num_layers > 1 else 0.0,
        )
        # Additive attention: two feed-forward layers -> one score per time step (§2.2).
        self.attention = nn.Sequential(
            nn.Linear(2 * hidden_size, attention_size),
            nn.Tanh(),
            nn.Linear(attention_size, 1),
        )
        self.dropout = nn.Dropout(float(dropout))
        self.classifier = nn.Linear(2 * hidden_size, n_classes)
        self.last_attention: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return class logits for ``x`` of shape ``(batch, time, features)``."""
        hidden, _ = self.lstm(x)  # (batch, time, 2 * hidden): forward and backward concatenated
        scores = self.attention(hidden).squeeze(-1)  # (batch, time)
        weights = torch.softmax(scores, dim=1)  # jointly soft-maxed over all time steps
        self.last_attention = weights.detach()
        summary = torch.sum(hidden * weights.unsqueeze(-1), dim=1)  # weighted sum over time
        return self.classifier(self.dropout(summary))
