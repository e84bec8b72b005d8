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
from xaibids.attribution.reliability import (
    dice,
    pairwise_model_correlation,
    pearson_per_sample,
    randomization_layers,
    top_mask,
)
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
    for Input x Gradient the infidelity is recomputed from the same seeded noise with numpy."""
    torch.manual_seed(0)
    model = build_model("linear", 3, 4, 2).eval()
    x = torch.randn(3, 4, 3, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([1, 0, 1])
    table = faithfulness(model, x, t, methods=("weight", "ig", "inputxgradient"), n_perturb_samples=6,
                         noise_sd=0.3, seed=5)
    value = table.set_index(["method", "metric"]).value
    assert value["weight", "infidelity"] < 1e-6
    assert value["ig", "infidelity"] < 1e-6
    assert value["weight", "max_sensitivity"] < 1e-6  # W does not depend on x
    assert value["ig", "completeness_error"] < 1e-5
    W = model.linear.weight.detach().numpy().reshape(2, 4, 3)[t.numpy()]
    noise = (0.3 * torch.randn((3 * 6, 4, 3), generator=torch.Generator().manual_seed(5))).numpy()
    noise = noise.reshape(3, 6, 4, 3)  # Captum repeats each sample n_perturb_samples times in a row
    attr = W * x.numpy()
    err = ((noise * attr[:, None]).sum(axis=(2, 3)) - (noise * W[:, None]).sum(axis=(2, 3))) ** 2
    assert value["inputxgradient", "infidelity"] == pytest.approx(err.mean(axis=1).mean(), rel=1e-5)
    assert value["inputxgradient", "max_sensitivity"] > 0


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
