"""Tests of the group-statistics entry points and the files they write (issue #6)."""

import json

import numpy as np
import pandas as pd
import pytest

from xaibids.stats import compute_group_statistics, write_group_statistics

CLASSES = ["control", "ASD-1"]
FEATURES = ["DMN_a", "DMN_b", "VIS_a", "VIS_b", "SM_a"]
GROUPS = {"DMN_a": "DMN", "DMN_b": "DMN", "VIS_a": "VIS", "VIS_b": "VIS", "SM_a": "SM"}


def _data(seed=0, n=16, t=40):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, t, len(FEATURES)))
    y = np.repeat([0, 1], n // 2)
    maps = np.exp(rng.normal(size=X.shape))
    maps[y == 1, :, 2] *= 3.0  # VIS_a more important in class 1
    maps /= maps.sum(axis=(1, 2), keepdims=True)
    maps[1] = np.nan  # not attributed
    maps[4, :, 4] = 0.0  # constant attribution timecourse
    subjects = [f"s{i}" for i in range(n - 2)] + ["s0", "s15"]  # s0 has two runs (class 0)
    y[-2] = 0
    return maps, X, y, subjects


def test_compute_group_statistics_contents():
    maps, X, y, subjects = _data()
    stats = compute_group_statistics(maps, X, y, CLASSES, FEATURES, subjects=subjects,
                                     feature_groups=GROUPS, n_boot=200)
    imp = stats.importance
    assert list(imp.columns) == ["feature", "importance", "importance_norm", "statistic",
                                 "share_t", "contrast_z", "p_value", "q_value", "selected",
                                 "cohens_d", "cohens_d_ci_low", "cohens_d_ci_high",
                                 "mean_control", "mean_ASD-1", "roi_score", "roi_score_norm",
                                 "roi_selected", "roi_score_control", "roi_score_ASD-1",
                                 "group"]
    assert imp.set_index("feature").cohens_d["VIS_a"] > 1
    assert (imp.cohens_d_ci_low <= imp.cohens_d).all()
    assert (imp.cohens_d <= imp.cohens_d_ci_high).all()
    assert stats.domains.group.tolist() == ["DMN", "VIS", "SM"]
    assert stats.parameters["NSubjectsAttributed"] == {"control": 7, "ASD-1": 7}
    assert stats.cosaliency.n_subjects == {"control": 7, "ASD-1": 7}  # s1 not attributed
    assert stats.sfnc.n_subjects == {"control": 8, "ASD-1": 7}  # X of all samples
    assert stats.cosaliency.excluded[["feature", "class", "n_excluded"]].values.tolist() == [
        ["SM_a", "control", 1]]
    assert stats.sfnc.excluded.empty
    assert set(stats.cosaliency.communities) == set(CLASSES)


def test_write_group_statistics_files(tmp_path):
    maps, X, y, subjects = _data()
    stats = compute_group_statistics(maps, X, y, CLASSES, FEATURES, subjects=subjects,
                                     feature_groups=GROUPS, n_boot=100)
    files = write_group_statistics(stats, tmp_path, "ig")
    names = sorted(p.name for p in files if p.suffix == ".tsv")
    assert names == sorted([
        "desc-ig_importance.tsv", "desc-ig_domains.tsv",
        "desc-igCosaliency_class-control_relmat.tsv", "desc-igCosaliency_class-ASD1_relmat.tsv",
        "desc-sFNC_class-control_relmat.tsv", "desc-sFNC_class-ASD1_relmat.tsv",
        "desc-igCosaliency_edges.tsv", "desc-sFNC_edges.tsv",
        "desc-igCosaliency_communities.tsv", "desc-sFNC_communities.tsv",
        "desc-modularity_metrics.tsv",
    ])
    assert all(p.with_suffix(".json") in files for p in files if p.suffix == ".tsv")
    for p in files:
        if p.suffix == ".json":
            assert json.loads(p.read_text())["Description"]

    def read(name):
        return pd.read_csv(tmp_path / name, sep="\t", na_values=["n/a"], keep_default_na=False)

    rel = read("desc-igCosaliency_class-control_relmat.tsv")
    assert list(rel.columns) == ["node"] + FEATURES and rel.node.tolist() == FEATURES
    np.testing.assert_allclose(rel[FEATURES].to_numpy(), stats.cosaliency.matrices["control"])
    edges = read("desc-sFNC_edges.tsv")
    assert list(edges.columns) == ["feature_a", "feature_b", "mean_control", "mean_ASD-1", "t",
                                   "p", "p_fdr", "significant"]
    assert len(edges) == 10
    comm = read("desc-igCosaliency_communities.tsv")
    assert list(comm.columns) == ["feature", "class", "community"]
    assert comm["class"].tolist() == ["control"] * 5 + ["ASD-1"] * 5
    assert comm.community.dtype.kind == "i" and comm.community.min() == 1
    mod = read("desc-modularity_metrics.tsv")
    assert list(mod.columns) == ["measure", "class", "modularity", "n_communities"]
    assert mod.measure.tolist() == ["igCosaliency"] * 2 + ["sFNC"] * 2
    imp_text = (tmp_path / "desc-ig_importance.tsv").read_text()
    assert "\tgroup\n" in imp_text.splitlines(keepends=True)[0]
    # constant SM_a attribution is reported in the sidecar of the edges
    side = json.loads((tmp_path / "desc-igCosaliency_edges.json").read_text())
    assert side["ExcludedFeatures"][0]["feature"] == "SM_a" and side["Alpha"] == 0.01


def test_second_method_keeps_sfnc_identical_and_merges_modularity(tmp_path):
    maps, X, y, subjects = _data()
    first = compute_group_statistics(maps, X, y, CLASSES, FEATURES, n_boot=50)
    write_group_statistics(first, tmp_path, "ig")
    sfnc = {p.name: p.read_bytes() for p in tmp_path.glob("desc-sFNC*")}
    assert len(sfnc) == 8
    other = np.flip(maps, axis=1).copy()  # a different "method"
    second = compute_group_statistics(other, X, y, CLASSES, FEATURES, n_boot=50,
                                      random_state=5)
    files = write_group_statistics(second, tmp_path, "deeplift")
    assert not any(p.name.startswith("desc-ig") for p in files)
    assert {p.name: p.read_bytes() for p in tmp_path.glob("desc-sFNC*")} == sfnc
    mod = pd.read_csv(tmp_path / "desc-modularity_metrics.tsv", sep="\t")
    assert mod.measure.tolist() == ["deepliftCosaliency"] * 2 + ["igCosaliency"] * 2 + ["sFNC"] * 2
    write_group_statistics(first, tmp_path, "ig")  # rewriting replaces, never duplicates
    assert len(pd.read_csv(tmp_path / "desc-modularity_metrics.tsv", sep="\t")) == 6
    assert not (tmp_path / "desc-ig_domains.tsv").exists()  # no groups given


def test_argument_errors(tmp_path):
    maps, X, y, _ = _data()
    with pytest.raises(ValueError, match="X of the maps' shape"):
        compute_group_statistics(maps, X[:, :10], y, CLASSES, FEATURES)
    with pytest.raises(ValueError, match="distinct feature names"):
        compute_group_statistics(maps, X, y, CLASSES, ["a"] * 5)
    with pytest.raises(ValueError, match="clashing"):
        compute_group_statistics(maps, X, y, ["a-b", "ab"], FEATURES)
    with pytest.raises(ValueError, match="Feature-group file"):
        compute_group_statistics(maps, X, y, CLASSES, FEATURES,
                                 feature_groups=tmp_path / "missing.tsv")
    with pytest.raises(ValueError, match="no attributed sample"):
        compute_group_statistics(np.full_like(maps, np.nan), X, y, CLASSES, FEATURES)
    stats = compute_group_statistics(maps, X, y, CLASSES, FEATURES, n_boot=0)
    assert stats.importance.cohens_d_ci_low.isna().all()
    with pytest.raises(ValueError, match="alphanumeric map key"):
        write_group_statistics(stats, tmp_path, "IG_1")
