"""`xaibids demo` (the README's first command) at a tiny size."""

import pandas as pd

from xaibids.cli.run import main


def test_demo_runs_both_levels_and_scores_against_truth(tmp_path, capsys):
    code = main(["demo", str(tmp_path / "demo"), "--n-subjects", "8", "--n-folds", "2",
                 "--n-models", "1", "--epochs", "2"])
    assert code == 0
    out = capsys.readouterr().out
    assert "xaibids demo finished." in out and "seed 001 ROI score F1" in out
    results = tmp_path / "demo" / "xaibids"
    assert len(list(results.glob("sub-*/func/*_desc-ig_attribution.nii.gz"))) == 8
    metrics = pd.read_csv(results / "group" / "desc-validation_metrics.tsv", sep="\t")
    assert {"importance_f1", "group_roi_f1", "roi_f1"} <= set(metrics["metric"])
