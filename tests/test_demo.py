"""`xaibids demo` (the README's first command): plumbing at a tiny size, recovery at full size."""

import pandas as pd
import pytest

from xaibids.cli.run import main


def test_demo_runs_both_levels_and_scores_against_truth(tmp_path, capsys):
    code = main(["demo", str(tmp_path / "demo"), "--n-subjects", "8", "--n-folds", "2",
                 "--n-models", "1", "--epochs", "2"])
    assert code == 0
    out = capsys.readouterr().out
    results = tmp_path / "demo" / "xaibids"
    assert "xaibids demo finished." in out and "R-precision" in out
    assert "verdict:" in out and "empirical-null rule" in out
    assert "baselines on the same timecourses and folds: logistic regression" in out
    assert (results / "group.html").as_uri() in out  # the report a new user opens
    assert len(list(results.glob("sub-*/func/*_desc-ig_attribution.nii.gz"))) == 8
    metrics = pd.read_csv(results / "group" / "desc-validation_metrics.tsv", sep="\t")
    assert {"importance_f1", "importance_r_precision", "importance_auc", "group_roi_f1",
            "roi_f1"} <= set(metrics["metric"])
    # the report shows the scores, and the rerun still takes the group level as finished
    assert "importance_r_precision" in (results / "group.html").read_text()
    assert main(["demo", str(tmp_path / "demo"), "--n-subjects", "8", "--n-folds", "2",
                 "--n-models", "1", "--epochs", "2"]) == 0
    assert "Nothing to do" in capsys.readouterr().err


@pytest.mark.slow
def test_full_demo_recovers_the_simulated_regions(tmp_path):
    """The default demo (about 8 minutes on a loaded 2-core machine), both levels at their
    defaults, classifies well, ranks the simulated regions first and selects them
    (docs/benchmarks.md, "Demo", gives the measured values: balanced accuracy 0.875, ranks
    1-4, 6, 7, F1 0.92)."""
    assert main(["demo", str(tmp_path / "demo")]) == 0
    results = tmp_path / "demo" / "xaibids"
    metrics = pd.read_csv(results / "group" / "desc-validation_metrics.tsv", sep="\t")
    value = metrics[metrics["subject"].isna()].set_index("metric")["value"]
    perf = pd.read_csv(results / "group" / "desc-performance_metrics.tsv", sep="\t")
    assert perf.loc[perf["fold"].astype(str) == "all", "balanced_accuracy"].item() >= 0.85
    assert value["importance_auc"] >= 0.95
    assert value["importance_r_precision"] >= 0.8
    assert value["importance_f1"] >= 0.8
    config = (results / "logs" / "config.toml").read_text()
    assert 'confounds = "simple"' in config and 'model = "region-cnn"' in config
