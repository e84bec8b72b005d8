"""xaibids-simulate boxes, var and rnn-ei: BIDS validity, determinism, ground truth."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from xaibids.fileio import read_timeseries_tsv
from xaibids.simulate import simulate
from xaibids.simulate.bidsio import tree_digest, validate, validator_available
from xaibids.simulate.rnn import simulate_rnn_ei
from xaibids.simulate.synthetic import simulate_boxes, simulate_var

needs_validator = pytest.mark.skipif(not validator_available(),
                                     reason="bids-validator-deno not installed")

SMALL = {
    "boxes": {},
    "var": {},
    "rnn-ei": {"n_timepoints": 60, "burn_in": 20},
}


@pytest.fixture(scope="module", params=sorted(SMALL))
def small_dataset(request, tmp_path_factory):
    kind = request.param
    out = tmp_path_factory.mktemp(kind.replace("-", "")) / "ds"
    simulate(kind, out, n_subjects=4, seed=7, **SMALL[kind])
    return kind, out


@needs_validator
def test_valid_bids(small_dataset):
    kind, out = small_dataset
    found = validate(out)
    assert found["errors"] == [], found["errors"]


def test_layout_and_ground_truth_files(small_dataset):
    kind, out = small_dataset
    parts = pd.read_csv(out / "participants.tsv", sep="\t")
    assert list(parts.columns) == ["participant_id", "group"]
    assert parts["group"].nunique() == 2 and (parts["group"].value_counts() == 2).all()
    levels = json.loads((out / "participants.json").read_text())["group"]["Levels"]
    assert set(levels) == set(parts["group"])
    deriv = out / "derivatives" / "timeseries"
    desc = json.loads((deriv / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "xaibids-simulate"
    truth = pd.read_csv(deriv / "groundtruth.tsv", sep="\t")
    assert list(truth["participant_id"]) == list(parts["participant_id"])
    for row in truth.itertuples():
        func = deriv / row.participant_id / "func"
        (ts_path,) = func.glob("*_stat-mean_timeseries.tsv")
        (mask_path,) = func.glob("*_desc-groundtruth_mask.tsv")
        side = json.loads(ts_path.with_suffix(".json").read_text())
        assert side["RepetitionTime"] > 0 and side["Atlas"] in ts_path.name
        data = read_timeseries_tsv(ts_path)
        mask = pd.read_csv(mask_path, sep="\t")
        assert list(mask.columns) == list(data.columns) and mask.shape == data.shape
        rows = np.nonzero(mask.to_numpy().any(axis=1))[0]
        cols = [c for c in mask.columns if mask[c].any()]
        assert rows[0] == row.onset and len(rows) == row.duration
        assert cols == row.relevant_features.split(";")
    assert "Ground truth" in (deriv / "README").read_text()
    assert (out / "README").read_text().startswith("# xaibids simulated dataset")


@pytest.mark.parametrize("kind", ["boxes", "var", "rnn-ei"])
def test_same_seed_byte_identical(tmp_path, kind):
    digests = []
    for name in ("a", "b"):
        simulate(kind, tmp_path / name, n_subjects=4, seed=11)
        digests.append(tree_digest(tmp_path / name))
    assert digests[0] == digests[1]
    simulate(kind, tmp_path / "c", n_subjects=4, seed=12)
    other = tree_digest(tmp_path / "c")
    ts = [k for k in other if k.endswith("_timeseries.tsv")]
    assert ts and all(other[k] != digests[0][k] for k in ts)


def test_subject_data_do_not_depend_on_dataset_size():
    small = simulate_boxes(n_subjects=4, seed=5)
    large = simulate_boxes(n_subjects=8, seed=5)
    assert np.array_equal(small.truth.any(axis=(1, 2)), large.truth[:4].any(axis=(1, 2)))
    # noise of subject i comes from its own stream: identical whatever the label
    base_small = np.where(small.truth, 0, small.data)
    base_large = np.where(large.truth[:4], 0, large.data[:4])
    both = ~small.truth & ~large.truth[:4]
    assert np.array_equal(base_small[both], base_large[both])


def test_boxes_follow_seed_000():
    sim = simulate_boxes(n_subjects=60, seed=1)
    assert sim.data.shape == (60, 200, 30)
    assert (sim.truth.sum(axis=(1, 2)) == 10 * 15).all()
    first = sim.truth[:, :, :15].any(axis=(1, 2))
    assert np.array_equal(first, sim.labels == 0)
    # class information only inside the box: energy of the first vs last 15 features
    inside, outside = [], []
    for x, t in zip(sim.data, sim.truth):
        win = t.any(axis=1)
        contrast = lambda seg: (seg[:, :15] ** 2).mean() - (seg[:, 15:] ** 2).mean()  # noqa: E731
        inside.append(contrast(x[win]))
        outside.append((x[~win] ** 2).mean(axis=0))
    inside, outside = np.array(inside), np.array(outside)
    assert stats.ttest_ind(inside[sim.labels == 0], inside[sim.labels == 1]).pvalue < 1e-6
    p_out = stats.ttest_ind(outside[sim.labels == 0], outside[sim.labels == 1]).pvalue
    assert p_out.min() > 0.001 / 30


def test_var_follows_seed_000():
    sim = simulate_var(n_subjects=40, seed=3)
    assert sim.data.shape == (40, 200, 30)
    assert (sim.truth.sum(axis=(1, 2)) == 15 * 30).all()
    mats = {k: sim.tables[f"var_{k}"].set_index("feature").to_numpy() for k in "ABC"}
    for mat in mats.values():
        eig = np.linalg.eigvalsh(mat)
        assert np.allclose(mat, mat.T) and eig.min() > -1e-10 and np.isclose(eig.max(), 0.9)
    top_b = np.linalg.eigh(mats["B"])[1][:, -1]
    top_c = np.linalg.eigh(mats["C"])[1][:, -1]

    def contrast(seg):  # energy along B's vs C's dominant direction
        return np.mean((seg @ top_b) ** 2) - np.mean((seg @ top_c) ** 2)

    inside, outside = [], []
    for x, onset, dur in zip(sim.data, sim.onsets, sim.durations):
        inside.append(contrast(x[onset:onset + dur]))
        start = 0 if onset >= dur + 5 else onset + dur + 5
        outside.append(contrast(x[start:start + dur]))
    inside, outside = np.array(inside), np.array(outside)
    lab = sim.labels
    assert stats.ttest_ind(inside[lab == 0], inside[lab == 1]).pvalue < 0.01
    assert stats.ttest_ind(outside[lab == 0], outside[lab == 1]).pvalue > 0.01


def _check_graph(sim):
    adjacency = sim.tables["rnn_adjacency"].set_index("node").to_numpy().astype(float)
    assert adjacency.shape == (100, 100) and np.array_equal(adjacency, adjacency.T)
    assert (adjacency.sum(axis=1) >= 1).all() and adjacency.sum() / 100 == pytest.approx(10)
    feats = sim.tables["groundtruth_features"]
    affected = feats["relevant"].to_numpy() == 1
    assert affected.sum() == 5  # 5 % prevalence
    ratio = feats["excitability_hyperexcitable"] / feats["excitability_control"]
    assert np.allclose(ratio[affected], 1.3) and np.allclose(ratio[~affected], 1.0)
    assert np.array_equal(sim.truth[0, 0], affected)
    return adjacency, affected


def test_rnn_ei_follows_seed_001():
    """Strock et al. 2025's code: every affected node gets an extra input δ/ρ from every node, so in
    group hyperexcitable the affected nodes settle at a large signed level."""
    sim = simulate_rnn_ei(n_subjects=60, seed=2, snr_db=0.0, severity=0.3)
    _, affected = _check_graph(sim)
    assert sim.data.shape == (60, 100, 100)  # the code's 100 steps
    assert sim.params["excitability"] == "input" and sim.params["burn_in"] == 0
    assert sim.params["spectral_radius_w1"] > 1.0 > sim.params["spectral_radius_w1"] - 0.3
    level = np.abs(sim.data.mean(axis=1))  # |mean over time| per subject and node
    hyper, ctrl = level[sim.labels == 1], level[sim.labels == 0]
    assert hyper[:, affected].mean() > 2 * hyper[:, ~affected].mean()
    assert set(np.argsort(hyper.mean(axis=0))[-5:]) == set(np.flatnonzero(affected))
    t, _ = stats.ttest_ind(hyper, ctrl)
    assert (t[affected] > 5).all()
    assert ctrl[:, affected].mean() == pytest.approx(ctrl[:, ~affected].mean(), rel=0.3)


def test_rnn_ei_gain_reading_of_the_text():
    """``excitability='gain'`` (W_1 = Λ_1 A/ρ): the affected nodes' gain on their neighbours."""
    sim = simulate_rnn_ei(n_subjects=60, seed=2, snr_db=0.0, severity=0.3, excitability="gain",
                          n_timepoints=200, burn_in=100, neural_noise=0.2)
    adjacency, affected = _check_graph(sim)
    weights = adjacency / adjacency.sum(axis=1, keepdims=True)
    gains = []
    for y in sim.data:
        y = y - y.mean(axis=0)
        nb = y @ weights.T
        gains.append((y * nb).sum(axis=0) / (nb * nb).sum(axis=0))
    gains = np.array(gains)
    t, p = stats.ttest_ind(gains[sim.labels == 1], gains[sim.labels == 0])
    assert (t[affected] > 4).all()
    assert (p[~affected] < 0.05 / 100).sum() == 0


def test_rnn_ei_local_self_excitation_in_a_stable_network():
    """``excitability='local'`` with ``coupling`` 0.8 (the ``bold`` kind's default): the affected
    nodes fluctuate more and more slowly in group ``hyperexcitable``, without drifting away from
    zero as the seed's ``input`` reading does."""
    sim = simulate_rnn_ei(n_subjects=60, seed=2, snr_db=10.0, severity=0.5,
                          excitability="local", coupling=0.8, burn_in=50)
    feats = sim.tables["groundtruth_features"]
    affected = feats["relevant"].to_numpy() == 1
    assert affected.sum() == 5  # 5 % prevalence
    # the table's excitability is the self-excitation here: 0 in controls, δ where affected
    assert (feats["excitability_hyperexcitable"] == np.where(affected, 0.5, 0.0)).all()
    assert (feats["excitability_control"] == 0).all()
    assert sim.params["coupling"] == 0.8 and "0.8*A/rho" in sim.params["dynamics"]
    assert "self-excitation" in sim.description
    log_sd = np.log(sim.data.std(axis=1))
    t, p = stats.ttest_ind(log_sd[sim.labels == 1], log_sd[sim.labels == 0])
    assert (t[affected] > 4).all()
    assert (p[~affected] < 0.05 / 100).sum() <= 1  # graph neighbours follow a little
    lag1 = [np.mean([np.corrcoef(y[:-1, j], y[1:, j])[0, 1] for y in sim.data[sim.labels == c]])
            for c in (0, 1) for j in [affected.nonzero()[0][0]]]
    assert lag1[1] > lag1[0]
    # no drift: the mean over time stays within the fluctuations (the ``input`` reading's
    # saturated level is many SDs away from zero)
    level = np.abs(sim.data.mean(axis=1)) / sim.data.std(axis=1)
    assert level[sim.labels == 1][:, affected].mean() < 1.0


def test_rnn_snr_sets_measurement_noise():
    lo = simulate_rnn_ei(n_subjects=2, seed=4, snr_db=-10, n_timepoints=50, burn_in=20)
    hi = simulate_rnn_ei(n_subjects=2, seed=4, snr_db=10, n_timepoints=50, burn_in=20)
    ratio = lo.params["measurement_noise_sd"] / hi.params["measurement_noise_sd"]
    assert ratio == pytest.approx(10.0)
    var = lo.params["reference_signal_variance"]
    assert 10 * np.log10(var / lo.params["measurement_noise_sd"] ** 2) == pytest.approx(-10)


@pytest.mark.parametrize("kind,opts,match", [
    ("boxes", {"window": 0}, "window"),
    ("var", {"alpha": 2.0}, "alpha"),
    ("rnn-ei", {"prevalence": 0.0}, "prevalence"),
    ("rnn-ei", {"coupling": 1.5}, "coupling"),
    ("boxes", {"n_nodes": 3}, "do not apply"),
])
def test_bad_options_write_nothing(tmp_path, kind, opts, match):
    with pytest.raises(ValueError, match=match):
        simulate(kind, tmp_path / "out", n_subjects=4, **opts)
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []
