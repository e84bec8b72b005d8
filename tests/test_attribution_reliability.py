"""Reliability metrics (issue #5) against independent numpy/scipy computations."""

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from xaibids.attribution import (
    RELIABILITY_FILES,
    baseline_agreement,
    faithfulness,
    method_agreement,
    method_dice,
    permutation_reproducibility,
    randomization_check,
    write_reliability,
)
from xaibids.attribution.ig import completeness_error
from xaibids.attribution.reliability import (
    dice,
    pairwise_model_correlation,
    pearson_per_sample,
    randomization_layers,
    top_mask,
)
from xaibids.attribution.stabilize import stabilize
from xaibids.learning import EnsembleConfig, TimeseriesDataset, attribute_fold, run_ensemble
from xaibids.learning.ensemble import load_fold_models
from xaibids.models import build_model

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_correlations_match_scipy():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 4, 3)), rng.normal(size=(5, 4, 3))
    expected = [stats.pearsonr(a[i].ravel(), b[i].ravel())[0] for i in range(5)]
    np.testing.assert_allclose(pearson_per_sample(a, b), expected, atol=1e-6)
    models = rng.normal(size=(4, 6, 2))
    c = np.corrcoef(models.reshape(4, -1))
    assert pairwise_model_correlation(models) == pytest.approx(c[np.triu_indices(4, 1)].mean(), abs=1e-6)
    assert np.isnan(pairwise_model_correlation(models[:1]))
    maps = {"x": a, "y": b, "z": a + 0.5 * b}
    table = method_agreement(maps)
    assert list(table.columns) == ["method", "x", "y", "z"] and list(table.method) == ["x", "y", "z"]
    for i, k in enumerate("xyz"):
        for j, l in enumerate("xyz"):
            r = np.mean([stats.pearsonr(maps[k][s].ravel(), maps[l][s].ravel())[0] for s in range(5)])
            assert table.iloc[i, j + 1] == pytest.approx(r, abs=1e-6)
    feat = method_agreement(maps, level="feature")
    r = stats.pearsonr(a.sum(axis=1).mean(axis=0), b.sum(axis=1).mean(axis=0))[0]
    assert feat.loc[0, "y"] == pytest.approx(r, abs=1e-6)


def test_dice_of_top_fraction_masks_matches_sets():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 10, 4)), rng.normal(size=(3, 10, 4))
    k = 8  # 20 % of 40 elements
    masks = top_mask(a, 0.2)
    assert masks.shape == a.shape and (masks.reshape(3, -1).sum(axis=1) == k).all()
    table = method_dice({"a": a, "b": b}, top_fraction=0.2)
    per_sample = []
    for i in range(3):
        sa = set(np.argsort(-np.abs(a[i]).ravel())[:k])
        sb = set(np.argsort(-np.abs(b[i]).ravel())[:k])
        per_sample.append(2 * len(sa & sb) / (len(sa) + len(sb)))
    assert table.loc[0, "b"] == pytest.approx(np.mean(per_sample), abs=1e-9)
    assert table.loc[0, "a"] == 1.0
    np.testing.assert_allclose(dice(np.array([[1, 1, 0, 0]]), np.array([[1, 0, 1, 0]])), [0.5])
    with pytest.raises(ValueError, match="top_fraction"):
        top_mask(a, 0)


def test_baseline_agreement_uses_ig_baseline_keys():
    rng = np.random.default_rng(2)
    maps = {"igZero": rng.normal(size=(2, 3, 3)), "igMean": rng.normal(size=(2, 3, 3)),
            "deeplift": rng.normal(size=(2, 3, 3))}
    table = baseline_agreement(maps)
    assert list(table.method) == ["igZero", "igMean"]
    with pytest.raises(ValueError, match="at least two baselines"):
        baseline_agreement({"ig": maps["igZero"]})


def test_randomization_spearman_matches_scipy():
    torch.manual_seed(0)
    model = build_model("stdnn", 3, 8, 2, channels=(8, 8), kernel_size=3).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 8, 3, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([0, 1, 0, 1])
    table = randomization_check(model, x, t, methods=("saliency",), seed=3)
    assert all(torch.equal(before[k], model.state_dict()[k]) for k in before)  # model untouched
    assert randomization_layers(model) == ["classifier", "block2.0", "block1.0"]
    assert list(table.layer) == ["none", "classifier", "block2.0", "block1.0"]
    assert table.spearman.iloc[0] == pytest.approx(1.0)
    # rebuild the cascade by hand and compare with scipy
    import copy

    from xaibids.attribution import attribute

    original = attribute("saliency", model, x, t).numpy()
    rand = copy.deepcopy(model)
    modules = dict(rand.named_modules())
    for step, name in enumerate(["classifier", "block2.0", "block1.0"], start=1):
        torch.manual_seed(3 + step)
        modules[name].reset_parameters()
        maps = attribute("saliency", rand, x, t).numpy()
        rho = np.nanmean([stats.spearmanr(np.abs(original[i]).ravel(), np.abs(maps[i]).ravel())[0]
                       for i in range(4)])
        assert table.spearman.iloc[step] == pytest.approx(rho, abs=1e-6)


def test_infidelity_and_completeness_on_a_linear_model():
    """Linear logit f: f(x) - f(x - I) = w·I, so W has infidelity 0 and IG completeness holds;
    for Input x Gradient the infidelity is recomputed from the same seeded noise with numpy.
    Float64 throughout, so the comparison holds to 1e-6 (float32 rounding alone is ~1e-6)."""
    torch.manual_seed(0)
    model = build_model("linear", 3, 4, 2).double().eval()
    x = torch.randn(3, 4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    t = torch.tensor([1, 0, 1])
    table = faithfulness(model, x, t, methods=("weight", "ig", "inputxgradient"), n_perturb_samples=6,
                         noise_sd=0.3, seed=5)
    value = table.set_index(["method", "metric"]).value
    assert value["weight", "infidelity"] < 1e-12
    assert value["ig", "infidelity"] < 1e-12
    assert value["weight", "max_sensitivity"] < 1e-12  # W does not depend on x
    assert value["ig", "completeness_error"] < 1e-7  # Captum rounds the quadrature weights to float32
    W = model.linear.weight.detach().numpy().reshape(2, 4, 3)[t.numpy()]
    # faithfulness draws its noise in the inputs' dtype from a generator seeded with `seed`
    noise = 0.3 * torch.randn((3 * 6, 4, 3), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    noise = noise.numpy().reshape(3, 6, 4, 3)  # Captum repeats each sample n_perturb_samples times in a row
    attr = W * x.numpy()
    err = ((noise * attr[:, None]).sum(axis=(2, 3)) - (noise * W[:, None]).sum(axis=(2, 3))) ** 2
    expected = err.mean(axis=1).mean()
    assert expected > 1e-2  # a non-trivial value, so the comparison below can fail
    assert value["inputxgradient", "infidelity"] == pytest.approx(expected, rel=1e-6)
    assert value["inputxgradient", "max_sensitivity"] > 0


def _sensitivity_draws(seed, n_perturb, radius, shape):
    """Captum's ``default_perturb_func`` draws of ``sensitivity_max``, redrawn by hand.

    ``faithfulness`` seeds the global generator with ``seed`` just before ``sensitivity_max``,
    which repeats every sample ``n_perturb`` times in a row (``repeat_interleave``) and draws
    float32 noise uniformly from ``[-radius, radius]`` for the whole expanded batch at once.
    Returns float64 ``(n_samples, n_perturb, *shape[1:])``.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        delta = torch.empty((shape[0] * n_perturb,) + tuple(shape[1:]), dtype=torch.float32)
        delta = delta.uniform_(-radius, radius)
    return delta.double().numpy().reshape((shape[0], n_perturb) + tuple(shape[1:]))


def test_max_sensitivity_closed_form_on_a_linear_model():
    """Yeh et al. (2019), Def. 3.1 as Captum estimates it: mean over samples of
    max_k ||Φ(x + δ_k) - Φ(x)||_2 / ||Φ(x)||_2. For a linear logit, Saliency |w| does not depend
    on x (exactly 0) and Input x Gradient changes by w ⊙ δ_k, a formula evaluated on the draws."""
    torch.manual_seed(0)
    model = build_model("linear", 3, 4, 2).double().eval()
    x = torch.randn(3, 4, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    t = torch.tensor([1, 0, 1])
    n_perturb, radius, seed = 7, 0.05, 11
    table = faithfulness(model, x, t, methods=("saliency", "inputxgradient"), n_perturb_samples=n_perturb,
                         sensitivity_radius=radius, seed=seed)
    value = table.set_index(["method", "metric"]).value
    assert value["saliency", "max_sensitivity"] == 0.0
    W = model.linear.weight.detach().numpy().reshape(2, 4, 3)[t.numpy()]
    delta = _sensitivity_draws(seed, n_perturb, radius, x.shape)
    change = np.sqrt(((W[:, None] * delta) ** 2).sum(axis=(2, 3)))  # (samples, draws)
    norm = np.sqrt(((W * x.numpy()) ** 2).sum(axis=(1, 2)))
    expected = (change.max(axis=1) / norm).mean()
    assert expected > 1e-3
    assert value["inputxgradient", "max_sensitivity"] == pytest.approx(expected, rel=1e-6)


class _TanhMLP(torch.nn.Module):
    """A small smooth nonlinear classifier: its gradients change with x everywhere."""

    def __init__(self, n_timepoints, n_features, n_classes=2, hidden=6):
        super().__init__()
        self.hidden = torch.nn.Linear(n_timepoints * n_features, hidden)
        self.out = torch.nn.Linear(hidden, n_classes)

    def forward(self, x):
        return self.out(torch.tanh(self.hidden(x.flatten(1))))


def _gradient(model, x, target):
    """d f_target / d x of one sample by plain autograd (no Captum)."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x[None])[0, target], x)
    return grad.detach().numpy()


def test_max_sensitivity_matches_a_direct_loop_on_a_nonlinear_model():
    torch.manual_seed(3)
    model = _TanhMLP(5, 3).double().eval()
    x = torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    t = torch.tensor([0, 1, 1, 0])
    n_perturb, radius, seed = 5, 0.3, 2
    table = faithfulness(model, x, t, methods=("saliency", "inputxgradient"), n_perturb_samples=n_perturb,
                         sensitivity_radius=radius, seed=seed)
    value = table.set_index(["method", "metric"]).value
    delta = _sensitivity_draws(seed, n_perturb, radius, x.shape)
    explain = {"saliency": lambda xi, ti: np.abs(_gradient(model, xi, ti)),
               "inputxgradient": lambda xi, ti: xi.numpy() * _gradient(model, xi, ti)}
    for method, phi in explain.items():
        per_sample = []
        for i in range(len(x)):
            reference = phi(x[i], int(t[i]))
            ratios = [np.linalg.norm(phi(x[i] + torch.from_numpy(d), int(t[i])) - reference)
                      / np.linalg.norm(reference) for d in delta[i]]
            per_sample.append(max(ratios))
        assert np.mean(per_sample) > 1e-3
        assert value[method, "max_sensitivity"] == pytest.approx(np.mean(per_sample), rel=1e-6)


def test_completeness_error_of_faithfulness_matches_a_direct_path_integral():
    """IG's completeness gap on a nonlinear model, with the path integral written out: Captum's
    default rule is Gauss-Legendre on [0, 1] (nodes (1 + u_k) / 2, weights w_k / 2, the weights
    rounded to float32 by Captum, which moves the sum by ~1e-8 and is redone here)."""
    torch.manual_seed(5)
    model = _TanhMLP(5, 3).double().eval()
    x = 2 * torch.randn(4, 5, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    baseline = 0.2 * torch.randn(1, 5, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    t = torch.tensor([1, 0, 0, 1])
    n_steps = 3  # coarse on purpose: the gap is far from 0
    table = faithfulness(model, x, t, methods=("ig",), baseline=baseline, n_perturb_samples=1,
                         method_params={"ig": {"n_steps": n_steps}})
    value = table.set_index(["method", "metric"]).value
    u, w = np.polynomial.legendre.leggauss(n_steps)
    alphas, weights = (1 + u) / 2, (w / 2).astype(np.float32).astype(np.float64)
    gaps, changes = [], []
    for i in range(len(x)):
        ti = int(t[i])
        path = sum(wk * _gradient(model, baseline[0] + ak * (x[i] - baseline[0]), ti)
                   for ak, wk in zip(alphas, weights))
        attr = (x[i] - baseline[0]).numpy() * path
        with torch.no_grad():
            change = float(model(x[i][None])[0, ti] - model(baseline)[0, ti])
        gaps.append(abs(attr.sum() - change))
        changes.append(abs(change))
    assert np.mean(gaps) > 1e-4
    assert value["ig", "completeness_error"] == pytest.approx(np.mean(gaps), rel=1e-6)
    assert value["ig", "relative_completeness_error"] == pytest.approx(np.mean(gaps) / np.mean(changes),
                                                                       rel=1e-6)
    # ig.completeness_error, the same computation, sums over the batch instead
    assert completeness_error(model, x, t, baseline, n_steps) == pytest.approx(
        np.sum(gaps) / np.sum(changes), rel=1e-6)
    # adaptive IG's maps are checked at their own tolerance
    adaptive = faithfulness(model, x, t, methods=("ig",), baseline=baseline, n_perturb_samples=1,
                            method_params={"ig": {"n_steps": "adaptive",
                                                  "completeness_tolerance": 0.001}})
    value = adaptive.set_index(["method", "metric"]).value
    assert value["ig", "relative_completeness_error"] <= 0.001


def _split_half_by_hand(models, X, y):
    """Per-sample split-half correlation from raw Input x Gradient maps made with autograd.

    The first ``n_models // 2`` models and the others are stabilized separately (Lewis et al. 2023,
    §2.4, closest map, absolute values) and the two maps correlated with numpy.
    """
    x, target = torch.as_tensor(X), torch.as_tensor(y)
    index = torch.arange(len(x))
    raw, losses = [], []
    for model in models:
        model.eval()
        xg = x.clone().requires_grad_(True)
        logits = model(xg)
        (grad,) = torch.autograd.grad(logits[index, target].sum(), xg)
        raw.append((xg * grad).detach().numpy())
        losses.append(-torch.log_softmax(logits.detach(), dim=1)[index, target].numpy())
    raw, losses = np.stack(raw), np.stack(losses)
    half = len(models) // 2
    r = []
    for j in range(len(x)):
        a = stabilize(raw[:half, j], losses[:half, j], how="closest", positive="abs")[0]
        b = stabilize(raw[half:, j], losses[half:, j], how="closest", positive="abs")[0]
        with np.errstate(invalid="ignore", divide="ignore"):  # NaN for a constant (e.g. all-zero) map
            r.append(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    return np.array(r), raw


def test_split_half_correlation_matches_hand_computation():
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(5, 6, 3)).astype(np.float32), np.array([0, 1, 0, 1, 1])
    models = []
    for seed in range(5):  # halves of 2 and 3 models: a split at the wrong index shows
        torch.manual_seed(seed)
        models.append(build_model("stdnn", 3, 6, 2, channels=(4, 4), kernel_size=3))
    batches = list(attribute_fold(models, X, y, methods=("inputxgradient",), batch_size=2,
                                  keep_model_maps=True))
    split = np.concatenate([b["stability"]["inputxgradient"]["split_half_correlation"] for b in batches])
    model_maps = np.concatenate([b["model_maps"]["inputxgradient"] for b in batches], axis=1)
    expected, raw = _split_half_by_hand(models, X, y)
    # the hand-made raw maps are the ones the ensemble used (its maps are |raw| / sum |raw|)
    np.testing.assert_allclose(model_maps, np.abs(raw) / np.abs(raw).sum(axis=(2, 3), keepdims=True),
                               rtol=1e-5, atol=1e-7)
    assert np.ptp(expected) > 1e-3  # the samples differ, so a misplaced sample shows
    np.testing.assert_allclose(split, expected, rtol=0, atol=1e-6)


def test_split_half_spearman_brown_matches_hand_computation(tmp_path):
    """The stability table's split-half correlation (mean over all samples) and its
    Spearman-Brown correction 2r / (1 + r), from the checkpointed models by hand."""
    rng = np.random.default_rng(5)
    n = 8
    dataset = TimeseriesDataset(
        X=rng.normal(size=(n, 5, 3)).astype(np.float32), y=np.arange(n) % 2, classes=["a", "b"],
        subjects=[f"sub-{i}" for i in range(n)], sources=[f"sub-{i}.tsv" for i in range(n)],
        feature_names=["f0", "f1", "f2"], groups=None,
    )
    config = EnsembleConfig(model="stdnn", n_folds=2, n_models=3, epochs=2, batch_size=4, device="cpu",
                            attribution=("inputxgradient",), attribution_batch_size=3,
                            model_kwargs={"channels": (4, 4), "kernel_size": 3})
    result = run_ensemble(dataset, config, tmp_path, progress=False)
    r = []
    for fold in (1, 2):
        models, X_test, y_test, _ = load_fold_models(dataset, config, tmp_path, fold)
        r.append(_split_half_by_hand(models, X_test, y_test)[0])
    r = np.concatenate(r)
    finite = np.isfinite(r)  # samples with a constant half map have no correlation and are left out
    table = result.stability.set_index(["method", "metric"])
    assert finite.sum() >= n - 2
    assert table.loc[("inputxgradient", "split_half_correlation"), "n_samples"] == finite.sum()
    mean_r = r[finite].mean()
    assert abs(mean_r) > 1e-3
    assert table.loc[("inputxgradient", "split_half_correlation"), "value"] == pytest.approx(mean_r, abs=1e-6)
    assert table.loc[("inputxgradient", "split_half_spearman_brown"), "value"] == pytest.approx(
        2 * mean_r / (1 + mean_r), abs=1e-6)


def test_permutation_reproducibility_matches_direct_counts():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(5, 2, 4))
    real[:, 0, 1] += 10  # a feature of class 0 far above its null
    null = rng.normal(size=(40, 2, 4))
    repro = rng.normal(size=(1, 5, 2, 4))
    table, threshold = permutation_reproducibility(real, null, repro, alpha=0.1,
                                                   feature_names=list("abcd"), classes=["c0", "c1"])
    q = np.quantile(null, 0.9, axis=0)
    counts = (real > q).sum(axis=0)
    assert threshold == int((repro[0] > q).sum(axis=0).max())
    assert table.reproducibility.tolist() == counts.ravel().tolist()
    np.testing.assert_allclose(table.null_threshold, q.ravel())
    assert table.reproducible.tolist() == (counts.ravel() > threshold).tolist()
    assert table.loc[(table["class"] == "c0") & (table.feature == "b"), "reproducible"].item()
    with pytest.raises(ValueError, match="Inconsistent shapes"):
        permutation_reproducibility(real, null[:, :1], repro)


def test_write_reliability_file_names_and_format(tmp_path):
    metrics = pd.DataFrame({"method": ["ig", "ig"], "metric": ["infidelity", "seed_correlation"],
                            "value": [0.1, np.nan]})
    rel = method_agreement({"a": np.ones((2, 2, 2)) + np.eye(2), "b": np.arange(8.0).reshape(2, 2, 2)})
    randomization = pd.DataFrame({"method": ["ig"], "step": [0], "layer": ["none"], "spearman": [1.0]})
    perm = pd.DataFrame({"feature": ["f0"], "null_threshold": [0.2], "reproducibility": [3],
                         "reproducible": [True]})
    written = write_reliability(tmp_path / "group", {
        "metrics": metrics, "method_agreement": rel, "method_dice": rel, "baseline_agreement": None,
        "randomization": randomization, "permutation": {"igZero": perm}})
    names = sorted(p.name for p in written)
    assert names == sorted(["desc-reliability_metrics.tsv", "desc-methodAgreement_relmat.tsv",
                            "desc-methodDice_relmat.tsv", "desc-randomization_metrics.tsv",
                            "desc-igZero_permutation.tsv"])
    text = (tmp_path / "group" / RELIABILITY_FILES["metrics"]).read_text().splitlines()
    assert text[0] == "method\tmetric\tvalue" and text[2] == "ig\tseed_correlation\tn/a"
    back = pd.read_csv(tmp_path / "group" / "desc-methodAgreement_relmat.tsv", sep="\t")
    pd.testing.assert_frame_equal(back, rel)
    with pytest.raises(ValueError, match="unknown table"):
        write_reliability(tmp_path, {"dice": rel})
    with pytest.raises(ValueError, match="lacks column"):
        write_reliability(tmp_path, {"metrics": rel})
