"""Nothing leaks across site-grouped folds (issue 28).

Four sites, each with its own signature (one coupled pair of regions that no other site has)
and its own share of class ``b`` (80 % or 20 %), and no class effect within any site: the only
route from the data to the label is "which site is this?". Under site-grouped cross-validation
(``cv_group``) a test site's signature was never seen in training, and the standardization is
fitted on the training sites only, so the verdict must say "not above chance"; under folds that
mix sites the same connectome ensemble learns the site and its majority class, which shows that
the planted confound is learnable and the check can fail.
"""

import numpy as np
import pytest

from xaibids.learning import EnsembleConfig, run_ensemble
from xaibids.learning.dataset import TimeseriesDataset
from xaibids.stats.verdict import out_of_fold_verdict

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PAIRS = [(0, 1), (2, 3), (4, 5), (1, 2)]
SHARE_B = [0.8, 0.2, 0.8, 0.2]
PER_SITE = 30


def _confounded_sites(seed: int = 0) -> TimeseriesDataset:
    rng = np.random.default_rng(seed)
    X, y, sites = [], [], []
    for site, ((a, b), share) in enumerate(zip(PAIRS, SHARE_B)):
        x = rng.standard_normal((PER_SITE, 80, 6))
        x[:, :, b] = 0.8 * x[:, :, a] + 0.6 * x[:, :, b]  # the site's signature
        labels = np.zeros(PER_SITE, dtype=int)
        labels[rng.choice(PER_SITE, round(share * PER_SITE), replace=False)] = 1
        X.append(x)
        y.append(labels)
        sites += [f"site{site}"] * PER_SITE
    n = len(sites)
    return TimeseriesDataset(X=np.concatenate(X).astype(np.float32), y=np.concatenate(y),
                             classes=["a", "b"], subjects=[f"sub-{i:03d}" for i in range(n)],
                             sources=[f"sub-{i:03d}.tsv" for i in range(n)],
                             feature_names=[f"r{j}" for j in range(6)],
                             groups=np.array(sites))


@pytest.mark.parametrize("grouped", [True, False], ids=["site-grouped", "mixed-sites"])
def test_a_site_confound_does_not_inflate_site_grouped_accuracy(grouped, tmp_path):
    dataset = _confounded_sites()
    if not grouped:
        dataset.groups = None
    config = EnsembleConfig(model="connectome", n_folds=4, n_models=2, epochs=60, device="cpu",
                            ig_steps=4, attribution_batch_size=64)
    result = run_ensemble(dataset, config, tmp_path, progress=False)
    if grouped:  # every test fold is one site that training never saw
        for train, test in result.folds:
            assert len(set(dataset.groups[test])) == 1
            assert not set(dataset.groups[test]) & set(dataset.groups[train])
    verdict = out_of_fold_verdict(result.map_info, 2, random_state=0)
    if grouped:
        assert not verdict.above_chance and verdict.balanced_accuracy < 0.6
    else:  # the confound is there to learn when sites are mixed
        assert verdict.above_chance and verdict.balanced_accuracy > 0.7
