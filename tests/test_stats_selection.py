"""Selection rules of the importance tables (xaibids.stats.selection)."""

import numpy as np
import pytest

from xaibids.stats import group_importance
from xaibids.stats.selection import (
    MIN_EMPIRICAL_FEATURES, SelectionRule, class_contrast, empirical_null_test, log_ratio,
    select_features,
)

RELEVANT = (3, 17, 42, 60, 91)


def _importance(n_subjects=80, n_features=100, relevant=RELEVANT, effect=1.0, level=0.0,
                bias=0.0, seed=0):
    """Per-subject shares of the maps (log-normal, normalized): ``relevant`` features larger in
    class 1 by ``effect`` and in every class by ``level`` (log units), and every feature
    shifted by its own random ``bias`` between the classes, the way explanations of the true
    class's logit differ between classes for features the model ignores."""
    rng = np.random.default_rng(seed)
    labels = np.repeat([0, 1], n_subjects // 2)
    shift = rng.normal(0, bias, n_features)
    logs = rng.normal(0, 0.5, (n_subjects, n_features)) + labels[:, None] * shift[None, :]
    logs[np.ix_(labels == 1, list(relevant))] += effect
    logs[:, list(relevant)] += level
    values = np.exp(logs)
    return values / values.sum(axis=1, keepdims=True), labels


def _select(values, labels, rule=None, n_classes=2, **kwargs):
    mean = values.mean(axis=0)
    return select_features(rule or SelectionRule(), values, labels, n_classes, mean / mean.max(),
                           mean / mean.max(), **kwargs)


def test_features_larger_in_one_class_are_found():
    # a feature the model leans on in one class only raises its level over all subjects too
    values, labels = _importance(bias=0.1)
    chosen = _select(values, labels)
    assert set(np.flatnonzero(chosen.selected)) == set(RELEVANT)
    assert chosen.nulls["contrast"].null == "empirical"
    assert np.all(chosen.columns["contrast_z"][list(RELEVANT)] > 2)  # reported, class 1 larger
    assert np.all(chosen.columns["q_value"][chosen.selected] <= 0.05)
    assert np.all(chosen.columns["q_value"] >= chosen.columns["p_value"] - 1e-12)


def test_features_the_model_leans_on_in_every_class_are_found():
    # a region whose signal differs by its mean: the model uses it for every subject, so its
    # attribution is large in both classes (no class contrast); the level test finds it
    values, labels = _importance(effect=0.0, level=1.5, bias=0.1, seed=2)
    chosen = _select(values, labels)
    assert set(np.flatnonzero(chosen.selected)) == set(RELEVANT)
    np.testing.assert_array_equal(chosen.columns["statistic"], chosen.nulls["level"].z)


def test_a_trace_below_an_even_share_is_not_selected():
    # a sparse model: five features carry the maps, the others are near zero and tightly so,
    # and one keeps a trace of weight (a third of an even share): it stands out from the bulk,
    # but the model does not rely on it
    rng = np.random.default_rng(4)
    values = np.exp(rng.normal(np.log(1e-4), 0.3, (80, 100)))
    values[:, list(RELEVANT)] = rng.uniform(0.15, 0.2, (80, len(RELEVANT)))
    values[:, 50] = rng.uniform(0.002, 0.004, 80)
    values /= values.sum(axis=1, keepdims=True)
    chosen = _select(values, np.repeat([0, 1], 40))
    assert chosen.nulls["level"].p_value[50] < 1e-6  # the level alone would select it
    assert chosen.columns["share_t"][50] < 0
    assert set(np.flatnonzero(chosen.selected)) == set(RELEVANT)


def test_nothing_is_selected_on_class_biased_null_features():
    # no relevant feature, but each feature's attribution differs between the classes by a
    # fixed amount (the explained logit): a t-test of that contrast against its own null
    # selects many, the rule none
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    values, labels = _importance(relevant=(), bias=0.3, seed=1)
    t = class_contrast(log_ratio(values), labels, 2)
    naive = multipletests(2 * stats.t.sf(np.abs(t), len(labels) - 2), method="fdr_bh")[1] <= 0.05
    assert naive.sum() >= 10
    assert not _select(values, labels).selected.any()


def test_false_discoveries_are_rare_over_null_datasets():
    # with every feature null, FDR 0.05 means at most 5 % of datasets select anything (9 of
    # these 200 do)
    hits = sum(_select(*_importance(relevant=(), bias=0.2, seed=100 + seed)).selected.any()
               for seed in range(200))
    assert hits <= 10


def test_more_classes_use_the_anova():
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1, 2], 30)
    values = np.exp(rng.normal(0, 0.5, (90, 60)))
    values[labels == 2, 7] *= 4
    chosen = _select(values / values.sum(1, keepdims=True), labels, n_classes=3)
    assert set(np.flatnonzero(chosen.selected)) == {7}


def test_few_features_fall_back_to_the_theoretical_null():
    values, labels = _importance(n_features=MIN_EMPIRICAL_FEATURES - 1, relevant=(2,), effect=2)
    chosen = _select(values, labels)
    assert chosen.nulls["level"].null == chosen.nulls["contrast"].null == "theoretical"
    assert chosen.selected[2]


def test_threshold_rules_and_withholding():
    values, labels = _importance()
    norm = np.linspace(0, 1, 100)
    fixed = select_features(SelectionRule("fixed"), values, labels, 2, norm, norm[::-1])
    assert fixed.selected.sum() == 50 and np.isnan(fixed.columns["p_value"]).all()
    roi = select_features(SelectionRule("roi-score"), values, labels, 2, norm, norm[::-1])
    assert roi.selected[0] and not roi.selected[-1]
    withheld = _select(values, labels, withheld="chance")
    assert not withheld.selected.any() and withheld.withheld == "chance"
    assert np.isfinite(withheld.columns["q_value"]).all()  # the statistics are still reported


def test_empirical_null_handles_undefined_statistics():
    stat = np.r_[np.random.default_rng(0).normal(size=50), np.nan, 8.0]
    test = empirical_null_test(stat)
    assert np.isnan(test.p_value[50]) and test.p_value[51] < 1e-4 and test.null == "empirical"


def test_log_ratio_removes_the_subject_total():
    values = np.array([[1.0, 2.0, 4.0], [10.0, 20.0, 40.0], [0.0, 1.0, 1.0]])
    ratios = log_ratio(values)
    np.testing.assert_allclose(ratios[0], ratios[1])
    np.testing.assert_allclose(ratios.sum(axis=1), 0, atol=1e-9)
    assert np.isfinite(ratios).all()  # a zero share is floored, not -inf


@pytest.mark.parametrize("name, alpha", [("best", 0.05), ("empirical-null", 0.0), ("fixed", 1.0)])
def test_rule_validation(name, alpha):
    with pytest.raises(ValueError, match="Selection"):
        SelectionRule(name, alpha)


def test_group_importance_table_and_sidecar():
    values, labels = _importance(n_subjects=40, n_features=30, relevant=(4,), effect=2.0)
    maps = values[:, None, :]
    names = [f"f{i}" for i in range(30)]
    table = group_importance(maps, labels, ["a", "b"], names, n_boot=0)
    assert list(table.columns[:9]) == ["feature", "importance", "importance_norm", "statistic",
                                       "share_t", "contrast_z", "p_value", "q_value", "selected"]
    assert table["selected"].tolist() == [i == 4 for i in range(30)]
    side = table.attrs["selection"]
    assert side["SelectionRule"] == "empirical-null" and side["SelectionAlpha"] == 0.05
    assert side["SelectionNull"]["level"]["Null"] == "empirical"
    assert "Benjamini-Hochberg" in side["SelectionDescription"]
    withheld = group_importance(maps, labels, ["a", "b"], names, n_boot=0,
                                withheld="not above chance")
    assert not withheld["selected"].any()
    assert withheld.attrs["selection"]["SelectionWithheld"] == "not above chance"
    # the rule may test other per-sample values than the maps' (the ensemble's mean)
    other = group_importance(maps, labels, ["a", "b"], names, n_boot=0,
                             selection_importance=np.roll(values, 1, axis=1))
    assert other["selected"].tolist() == [i == 5 for i in range(30)]
