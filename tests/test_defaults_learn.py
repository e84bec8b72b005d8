"""The defaults learn what a ten-line baseline learns (issue 25).

A few dozen subjects, a hundred regions and a class effect in the BOLD band of a few of them
(the ``bold`` simulator's default effect, here as region timecourses without images): the
default ensemble must be above chance, at least as accurate as a logistic regression on the
regions' standard deviations on the same folds, and rank the affected regions first. The
previous default (``stdnn``) was at chance on such data (docs/benchmarks.md, "Defaults on the
BOLD simulator").
"""

import numpy as np

from xaibids.learning.ensemble import EnsembleConfig, run_ensemble
from xaibids.stats.verdict import out_of_fold_verdict
from xaibids.validation.baselines import classification_baselines, region_tests, truth_ranks
from xaibids.validation.benchmark import as_dataset, simulate_in_memory


def test_default_ensemble_learns_a_bold_band_effect_like_the_baseline(tmp_path):
    sim = simulate_in_memory("rnn-ei", 40, seed=1, snr_db=10.0, severity=0.5,
                             excitability="local", coupling=0.8, burn_in=50, tr=2.0)
    dataset = as_dataset(sim)
    relevant = np.isin(dataset.feature_names, sim.relevant_features[0])
    result = run_ensemble(dataset, EnsembleConfig(n_folds=4, n_models=2, random_seed=0),
                          tmp_path, progress=False)
    assert EnsembleConfig().model == "region-cnn"
    verdict = out_of_fold_verdict(result.map_info, 2)
    baseline = classification_baselines(dataset.X, dataset.y, result.folds)
    print("default ensemble:", verdict.balanced_accuracy, "baselines:", baseline)
    assert verdict.above_chance
    assert verdict.balanced_accuracy >= baseline["logreg_sd_balanced_accuracy"] - 0.05
    importance = result.mean_model_importance["ig"].mean(axis=0)
    assert truth_ranks(importance, relevant) == [1, 2, 3, 4, 5]
    # the t-test baseline finds the same regions
    assert truth_ranks(region_tests(dataset.X, dataset.y)["sd"]["t"], relevant)[-1] <= 10
