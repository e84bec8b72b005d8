"""Every confound strategy keeps the class effect of ``xaibids-simulate bold``; no cleaning loses it
to the simulated motion (issue 25).

40 subjects at the simulator's defaults, the participant level at its defaults but
``--confounds``, the group level's default model on 4 folds x 2 models. The full-size figures
(4 folds x 5 models) are in docs/benchmarks.md, "Defaults on the BOLD simulator".
"""

import numpy as np
import pandas as pd
import pytest

from xaibids.cli.run import main
from xaibids.learning.dataset import output_timecourses
from xaibids.learning.ensemble import EnsembleConfig, run_ensemble
from xaibids.simulate import simulate
from xaibids.stats.verdict import out_of_fold_verdict
from xaibids.validation.baselines import classification_baselines, truth_ranks


@pytest.mark.slow
def test_confound_strategies_keep_the_effect_that_motion_hides_without_them(tmp_path):
    bids = tmp_path / "bids"
    simulate("bold", bids, n_subjects=40, seed=0)
    truth = pd.read_csv(bids / "derivatives" / "fmriprep" / "groundtruth_features.tsv", sep="\t")
    accuracy, baseline = {}, {}
    for strategy in ("simple", "scrubbing", "compcor", "none"):
        out = tmp_path / strategy
        assert main([str(bids), str(out), "participant", "-d",
                     f"fmriprep={bids / 'derivatives' / 'fmriprep'}", "-w", str(tmp_path / "w"),
                     "--atlas", "harvard-oxford", "--confounds", strategy]) == 0
        dataset = output_timecourses(out, bids / "participants.tsv", "group")
        result = run_ensemble(dataset, EnsembleConfig(n_folds=4, n_models=2, random_seed=0),
                              tmp_path / f"ens-{strategy}", progress=False)
        verdict = out_of_fold_verdict(result.map_info, 2)
        accuracy[strategy] = verdict.balanced_accuracy
        baseline[strategy] = classification_baselines(
            dataset.X, dataset.y, result.folds)["logreg_sd_balanced_accuracy"]
        if strategy != "none":
            assert verdict.above_chance, (strategy, verdict.sentence())
            relevant = np.isin(dataset.feature_names,
                               truth.loc[truth["relevant"] == 1, "feature"])
            ranks = truth_ranks(result.mean_model_importance["ig"].mean(axis=0), relevant)
            assert sorted(ranks)[3] <= 6, (strategy, ranks)  # most simulated regions on top
    print("balanced accuracy:", accuracy, "LR on SD:", baseline)
    for strategy in ("simple", "scrubbing", "compcor"):
        assert accuracy[strategy] >= baseline[strategy] - 0.05, (accuracy, baseline)
        assert accuracy[strategy] >= accuracy["none"] + 0.1, accuracy
