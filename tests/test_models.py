"""Tests of the model zoo (Lewis et al. 2023 §2.2, Strock et al. 2025 Methods, Gotsopoulos et al. 2018 §2.7)."""

import pytest
import torch

from xaibids.models import MODEL_NAMES, LSTMAttention, build_model

#: Models of timecourses (cnn3d, for volumes, has tests/test_models_cnn3d.py).
TIMESERIES_MODELS = [name for name in MODEL_NAMES if name != "cnn3d"]
SMALL = {
    "lstm-attn": {"hidden_size": 6, "attention_size": 5},
    "stdnn": {"channels": (4, 4), "kernel_size": 3},
    "linear": {},
}


@pytest.mark.parametrize("name", TIMESERIES_MODELS)
@pytest.mark.parametrize("n_timepoints", [1, 7, 20])
def test_output_shape_and_gradient(name, n_timepoints):
    model = build_model(name, n_features=5, n_timepoints=n_timepoints, n_classes=3, **SMALL[name])
    x = torch.randn(4, n_timepoints, 5, requires_grad=True)
    logits = model(x)
    assert logits.shape == (4, 3)
    logits[:, 1].sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", TIMESERIES_MODELS)
def test_seeded_initialization_is_reproducible(name):
    torch.manual_seed(3)
    a = build_model(name, 5, 10, 2, **SMALL[name])
    torch.manual_seed(3)
    b = build_model(name, 5, 10, 2, **SMALL[name])
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


def test_lstm_attention_weights_are_a_softmax_over_time():
    model = LSTMAttention(n_features=3, n_timepoints=9, n_classes=2, hidden_size=4, attention_size=3)
    model(torch.randn(2, 9, 3))
    assert model.last_attention.shape == (2, 9)
    assert torch.allclose(model.last_attention.sum(dim=1), torch.ones(2))
    assert model.lstm.bidirectional
    assert model.classifier.in_features == 8  # forward and backward states concatenated


def test_build_model_errors():
    with pytest.raises(ValueError, match="Unknown model 'cnn'.*lstm-attn, stdnn, linear, cnn3d"):
        build_model("cnn", 5, 10, 2)
    with pytest.raises(ValueError, match="n_classes"):
        build_model("stdnn", 5, 10, 1)
    with pytest.raises(ValueError, match="no option.*hidden_size.*accepted options are: channels"):
        build_model("stdnn", 5, 10, 2, hidden_size=3)
    with pytest.raises(ValueError, match="pool must be"):
        build_model("stdnn", 5, 10, 2, pool="median")


def test_linear_rejects_other_lengths():
    model = build_model("linear", 5, 10, 2)
    with pytest.raises(ValueError, match=r"expects input of shape \(batch, 10, 5\)"):
        model(torch.randn(2, 11, 5))
