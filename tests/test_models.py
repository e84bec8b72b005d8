"""Tests of the model zoo (Lewis et al. 2023 §2.2, Strock et al. 2025 Methods, Gotsopoulos et al. 2018 §2.7,
Schirrmeister et al. 2017 §2.4.2)."""

import numpy as np
import pytest
import torch

from xaibids.models import MODEL_NAMES, Connectome, LSTMAttention, RegionCNN, build_model

#: Models of timecourses (cnn3d, for volumes, has tests/test_models_cnn3d.py).
TIMESERIES_MODELS = [name for name in MODEL_NAMES if name != "cnn3d"]
SMALL = {
    "region-cnn": {"filters": 2, "kernel_size": 3},
    "lstm-attn": {"hidden_size": 6, "attention_size": 5},
    "stdnn": {"channels": (4, 4), "kernel_size": 3},
    "linear": {},
    "connectome": {},
}


@pytest.mark.parametrize("name", TIMESERIES_MODELS)
@pytest.mark.parametrize("n_timepoints", [1, 7, 20])
def test_output_shape_and_gradient(name, n_timepoints):
    # seeded: with a single time point all ReLUs of a small random stdnn can be off for one
    # draw of weights and inputs (a zero gradient that is right), which made this test flaky
    torch.manual_seed(0)
    if name == "connectome" and n_timepoints == 1:  # no correlation of one time point
        with pytest.raises(ValueError, match="at least 2 time points"):
            build_model(name, n_features=5, n_timepoints=1, n_classes=3)
        return
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
    with pytest.raises(ValueError, match="Unknown model 'cnn'.*region-cnn, lstm-attn, stdnn, linear, connectome, cnn3d"):
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


def test_region_cnn_keeps_regions_apart():
    """No layer mixes regions before the classifier: changing one region's timecourse changes
    only that region's features, and each region's features see its amplitude."""
    torch.manual_seed(0)
    model = RegionCNN(n_features=6, n_timepoints=30, n_classes=2)
    x = torch.randn(3, 30, 6)
    changed = x.clone()
    changed[:, :, 2] *= 3.0
    before, after = model.region_features(x), model.region_features(changed)
    assert before.shape == (3, 6, 4)
    differs = (before - after).abs().amax(dim=(0, 2)) > 1e-6
    assert differs.tolist() == [False, False, True, False, False, False]
    # log-power pooling: three times the amplitude is log(9) more power, up to the bias and eps
    assert torch.all(after[:, 2] > before[:, 2])


def test_region_cnn_learns_which_region_has_more_variance():
    """A logistic regression on the regions' SD solves this; so must the default model."""
    generator = torch.Generator().manual_seed(1)
    y = torch.arange(40) % 2
    x = torch.randn(40, 50, 8, generator=generator)
    x[y == 1, :, 5] *= 1.6
    torch.manual_seed(0)
    model = RegionCNN(n_features=8, n_timepoints=50, n_classes=2)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    assert (model(x).argmax(dim=1) == y).float().mean() >= 0.9
    weight = model.classifier.weight.detach().reshape(2, 8, 4)
    assert (weight[1] - weight[0]).abs().sum(dim=1).argmax() == 5


@pytest.mark.parametrize("batched", [False, True])
def test_region_cnn_group_lasso_leaves_one_region(batched):
    """With the default sparsity (the group lasso, also in the validation loss that early
    stopping watches) the classifier keeps the one region whose variance differs and leaves
    the others' weights near zero; without it, they keep weights of a similar size."""
    import numpy as np

    from xaibids.config import LearningSettings
    from xaibids.learning.training import train_model, train_models_batched

    assert RegionCNN(4, 10, 2).sparsity == LearningSettings().sparsity > 0
    rng = np.random.default_rng(1)
    y = np.arange(80) % 2
    x = rng.standard_normal((80, 50, 8)).astype(np.float32)
    x[y == 1, :, 5] *= 1.6

    def region_norms(sparsity):
        args = ("region-cnn", {"sparsity": sparsity}, x[:60], y[:60], x[60:], y[60:], 2)
        state = (train_models_batched(*args, seeds=[0], epochs=300)[0][0] if batched
                 else train_model(*args, seed=0, epochs=300)[0])
        return state["classifier.weight"].reshape(2, 8, 4).pow(2).sum(dim=(0, 2)).sqrt()

    sparse, dense = region_norms(LearningSettings().sparsity), region_norms(0.0)
    others = [r for r in range(8) if r != 5]
    assert sparse.argmax() == 5 and sparse[others].max() < 0.05 * sparse[5]
    assert dense[others].max() > 0.2 * dense[5]  # 0.44 here


def test_region_cnn_option_errors():
    for option, match in ((dict(filters=0), "filters must be"), (dict(pool="max"), "pool must be"),
                          (dict(eps=0.0), "eps must be"), (dict(dropout=1.0), "dropout must be"),
                          (dict(sparsity=-0.1), "sparsity must be")):
        with pytest.raises(ValueError, match=match):
            build_model("region-cnn", 5, 10, 2, **option)


@pytest.mark.parametrize("name, citation", [("region-cnn", "schirrmeister2017"),
                                            ("stdnn", "strock2025"), ("lstm-attn", "lewis2023"),
                                            ("linear", "gotsopoulos2018"),
                                            ("connectome", "abraham2017")])
def test_methods_text_describes_and_cites_each_timecourse_model(name, citation):
    import numpy as np

    from xaibids.levels.group import ensemble_config, group_methods
    from xaibids.config import Config
    from xaibids.learning.dataset import TimeseriesDataset

    subjects = [f"sub-{i}" for i in range(4)]
    dataset = TimeseriesDataset(X=np.zeros((4, 10, 3)), y=np.array([0, 1, 0, 1]),
                                classes=["a", "b"], subjects=subjects, sources=subjects,
                                feature_names=list("abc"))
    config = Config()
    config.learning.model = name
    text = group_methods(config, ensemble_config(config, dataset, None), dataset, "timecourses")
    assert f"[@{citation}]" in text
    assert ("4 temporal filters of 5 time points" in text) is (name == "region-cnn")


def test_connectome_edges_are_nilearns_fisher_z_correlations():
    """With a negligible ``eps`` the edges are the Fisher z of nilearn's (unshrunk) correlation
    matrix times ``sqrt(time points - 3)``, in nilearn's vectorized order; with the default
    ``eps`` the correlations are shrunk by ``1 / (1 + eps)`` for unit-variance inputs."""
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.covariance import EmpiricalCovariance

    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 200, 6))
    x[:, :, 1] += 0.8 * x[:, :, 0]
    expected = ConnectivityMeasure(cov_estimator=EmpiricalCovariance(), kind="correlation",
                                   vectorize=True, discard_diagonal=True).fit_transform(list(x))
    edges = Connectome(6, 200, 2, eps=1e-9).edges(torch.as_tensor(x, dtype=torch.float32))
    np.testing.assert_allclose(edges.numpy() / np.sqrt(197), np.arctanh(expected), atol=1e-4)
    standardized = (x - x.mean(axis=1, keepdims=True)) / x.std(axis=1, keepdims=True)
    shrunk = Connectome(6, 200, 2).edges(torch.as_tensor(standardized, dtype=torch.float32))
    np.testing.assert_allclose(np.tanh(shrunk.numpy() / np.sqrt(197)), expected / 1.1, atol=1e-4)


def test_connectome_integrated_gradients_complete_from_the_zero_baseline():
    """The regularized correlation grows smoothly from the zero baseline, so IG's path
    integral is accurate: the attributions sum to the logit difference (completeness). A
    scale-invariant correlation would leave the whole difference to a jump at the origin."""
    from captum.attr import IntegratedGradients

    torch.manual_seed(0)
    model = Connectome(5, 40, 2).eval()
    x = torch.randn(4, 40, 5)
    attr, delta = IntegratedGradients(model).attribute(
        x, torch.zeros_like(x), target=1, n_steps=50, return_convergence_delta=True)
    gap = (model(x) - model(torch.zeros_like(x)))[:, 1]
    assert gap.abs().min() > 1e-3
    assert (delta.abs() < 0.02 * gap.abs()).all()


def test_connectome_learns_coupling_that_no_region_variance_shows():
    """Two classes differ only in the correlation of regions 0 and 1 (equal variances): the
    connectome model separates them and its largest weight is that edge; a ridge penalty is
    in the objective (also in the validation loss)."""
    from xaibids.learning.training import predict_logits, train_model

    rng = np.random.default_rng(2)
    y = np.arange(120) % 2
    x = rng.standard_normal((120, 60, 6))
    rho = np.where(y == 1, 0.6, 0.0)[:, None]
    x[:, :, 1] = rho * x[:, :, 0] + np.sqrt(1 - rho ** 2) * x[:, :, 1]
    x = x.astype(np.float32)
    state, info = train_model("connectome", {}, x[:80], y[:80], x[80:100], y[80:100], 2, seed=0)
    model = Connectome(6, 60, 2)
    model.load_state_dict(state)
    model.eval()
    assert model.penalized and float(model.penalty().detach()) > 0
    pred = predict_logits(model, torch.as_tensor(x[100:])).argmax(1).numpy()
    assert (pred == y[100:]).mean() >= 0.9
    weight = state["classifier.weight"]
    assert (weight[1] - weight[0]).abs().argmax() == 0  # edge (1, 0) comes first


def test_connectome_option_errors():
    for kw, match in ((dict(n_features=1), "at least 2 features"),
                      (dict(n_timepoints=1), "at least 2 time points"), (dict(eps=0.0), "eps must be"),
                      (dict(dropout=1.0), "dropout must be"), (dict(ridge=-1.0), "ridge must be")):
        args = dict(n_features=5, n_timepoints=10, n_classes=2) | kw
        with pytest.raises(ValueError, match=match):
            Connectome(**args)
