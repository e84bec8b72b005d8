"""The classifier's verdict against chance (xaibids.stats.verdict)."""

import numpy as np
import pandas as pd
import pytest

from xaibids.stats.verdict import (
    classifier_verdict, out_of_fold_verdict, performance_with_verdict, verdict_sidecar,
)


def test_learned_classifier_is_above_chance():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    pred = np.where(rng.random(60) < 0.85, y, 1 - y)
    v = classifier_verdict(y, pred, 2, n_permutations=2000)
    assert v.above_chance and v.p_value < 0.001
    assert v.ci_low < v.balanced_accuracy < v.ci_high + 0.02
    assert v.ci_low > 0.6
    assert "above chance" in v.sentence() and "NOT" not in v.sentence()


def test_chance_predictions_are_not_above_chance_and_the_test_is_calibrated():
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 20)
    ps = [classifier_verdict(y, rng.integers(0, 2, 40), 2, n_permutations=500,
                             random_state=k).p_value for k in range(200)]
    rate = np.mean(np.array(ps) <= 0.05)
    assert rate <= 0.08  # nominal 0.05 (discrete test: at most that, up to sampling)
    v = classifier_verdict(y, rng.integers(0, 2, 40), 2)
    assert "NOT above chance" in v.sentence() or v.p_value <= 0.05


def test_runs_of_a_subject_move_together():
    # 10 subjects with 8 runs each, predictions constant within a subject: per-run permutation
    # would treat 80 samples as independent and overstate the evidence
    y_subj = np.repeat([0, 1], 5)
    pred_subj = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 0])  # 8 of 10 subjects right
    subjects = np.repeat([f"s{i}" for i in range(10)], 8)
    y, pred = np.repeat(y_subj, 8), np.repeat(pred_subj, 8)
    grouped = classifier_verdict(y, pred, 2, subjects=subjects, n_permutations=5000)
    flat = classifier_verdict(y, pred, 2, n_permutations=5000)
    assert grouped.permuted == "subjects"
    assert flat.p_value < 0.001 < grouped.p_value
    assert grouped.p_value == pytest.approx(0.1, abs=0.03)  # exact: 26 of 252 labelings


def test_classes_within_subjects_are_permuted_within_subjects():
    y = np.tile([0, 1, 2], 8)
    subjects = np.repeat(["a", "b"], 12)
    v = classifier_verdict(y, y, 3, subjects=subjects, n_permutations=1000)
    assert v.permuted == "within-subjects" and v.above_chance and v.chance == pytest.approx(1 / 3)


def test_performance_table_and_sidecar():
    info = [{"true_index": t, "prediction_index": p, "subject": f"sub-{i}"}
            for i, (t, p) in enumerate(zip([0, 1] * 20, [0, 1] * 20))] + [None]
    v = out_of_fold_verdict(info, 2)
    perf = pd.DataFrame({"fold": [1, 2], "model": ["ensemble", "ensemble"], "n_models": [3, 3],
                         "accuracy": [1.0, 1.0], "balanced_accuracy": [1.0, 1.0],
                         "loss": [0.1, 0.1]})
    table = performance_with_verdict(perf, v)
    last = table.iloc[-1]
    assert last["fold"] == "all" and last["above_chance"] and last["balanced_accuracy"] == 1.0
    assert table["p_value"].iloc[:2].isna().all()
    side = verdict_sidecar(v)
    assert side["Verdict"].startswith("The classifier is above chance")
    assert "Brodersen" in side["Interval"]


@pytest.mark.parametrize("kwargs", [{"alpha": 0.0}, {"n_permutations": 0}, {"ci_level": 1.0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="classifier_verdict"):
        classifier_verdict([0, 1], [0, 1], 2, **kwargs)
