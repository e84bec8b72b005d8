"""Tests of assemble_dataset: labels from participants.tsv, lengths, features, errors."""

import logging

import numpy as np
import pandas as pd
import pytest

from xaibids.fileio import write_timeseries_tsv
from xaibids.learning import TimeseriesDataset, assemble_dataset

FEATURES = ["roi-1", "roi-2", "roi-3"]


def participants(**columns):
    ids = [f"sub-{i:02d}" for i in range(1, 7)]
    frame = pd.DataFrame({"participant_id": ids, **columns}, dtype=str).set_index("participant_id")
    return frame


def write_runs(tmp_path, lengths=(10,) * 6, features=None, nan_at=None):
    runs = []
    rng = np.random.default_rng(0)
    for i, length in enumerate(lengths, start=1):
        data = rng.normal(size=(length, len(FEATURES)))
        if nan_at is not None and i == nan_at:
            data[2, 1] = np.nan
        names = features[i] if features and i in features else FEATURES
        path = write_timeseries_tsv(data, names, tmp_path / f"sub-{i:02d}_timeseries.tsv")
        runs.append((f"sub-{i:02d}", str(path)))
    return runs


def test_assemble_dataset(tmp_path, caplog):
    runs = write_runs(tmp_path, nan_at=3)
    table = participants(group=["ctl", "asd", "ctl", "n/a", "asd", "ctl"],
                         site=["a", "a", "b", "b", "c", "c"])
    with caplog.at_level(logging.WARNING, logger="xaibids"):
        ds = assemble_dataset(runs, table, target="group", cv_group="site")
    assert "sub-04" in caplog.text and "group" in caplog.text
    assert isinstance(ds, TimeseriesDataset)
    assert ds.X.shape == (5, 10, 3) and ds.X.dtype == np.float32
    assert ds.classes == ["asd", "ctl"]
    assert ds.y.tolist() == [1, 0, 1, 0, 1]
    assert ds.y.dtype == np.int64
    assert ds.subjects == ["sub-01", "sub-02", "sub-03", "sub-05", "sub-06"]
    assert ds.sources[0].endswith("sub-01_timeseries.tsv")
    assert ds.feature_names == FEATURES
    assert ds.groups.tolist() == ["a", "a", "b", "c", "c"]
    assert np.isnan(ds.X[2, 2, 1])  # kept; standardization fills it later


def test_runs_of_different_length(tmp_path, caplog):
    runs = write_runs(tmp_path, lengths=(10, 10, 8, 10, 12, 10))
    table = participants(group=["a", "b"] * 3)
    with caplog.at_level(logging.WARNING, logger="xaibids"):
        ds = assemble_dataset(runs, table, target="group")
    assert ds.X.shape == (6, 8, 3)
    assert "cropping" in caplog.text
    with pytest.raises(ValueError, match=r"different lengths \(8 time points in .*sub-03.*12 in .*sub-05.*'crop'"):
        assemble_dataset(runs, table, target="group", length_policy="error")
    with pytest.raises(ValueError, match="length_policy must be one of crop, error"):
        assemble_dataset(runs, table, target="group", length_policy="pad")


def test_runs_censored_beyond_max_censored_are_left_out_before_cropping(tmp_path, caplog):
    """With scrubbing, one subject who moved much would crop every run to its few volumes; runs
    whose sidecars record more than --max-censored censored are left out first."""
    import json

    from xaibids.config import LearningSettings
    from xaibids.learning.dataset import MAX_CENSORED

    kept_volumes = (100, 95, 40, 90, 100, 82)
    runs = write_runs(tmp_path, lengths=kept_volumes)
    for (_, path), kept in zip(runs, kept_volumes):
        side = {"NumberOfVolumes": 100, "NumberOfVolumesKept": kept}
        (tmp_path / (path.rsplit("/", 1)[1][: -len(".tsv")] + ".json")).write_text(
            json.dumps(side))
    table = participants(group=["a", "b"] * 3)
    with caplog.at_level(logging.WARNING, logger="xaibids"):
        ds = assemble_dataset(runs, table, target="group")
    assert LearningSettings().max_censored == MAX_CENSORED == 0.2
    assert ds.subjects == ["sub-01", "sub-02", "sub-04", "sub-05", "sub-06"]
    assert ds.X.shape == (5, 82, 3) and ds.cropped_from == 100
    assert list(ds.censored_out.values()) == [pytest.approx(0.6)]
    assert "Leaving out 1 run(s)" in caplog.text and "sub-03_timeseries.tsv" in caplog.text
    # the methods text says what was done to the runs used
    from xaibids.config import Config
    from xaibids.levels.group import ensemble_config, group_methods

    text = " ".join(group_methods(Config(), ensemble_config(Config(), ds, None), ds,
                                  "timecourses").split())
    assert ("1 run(s) whose censoring had removed more than 20% of their volumes (as their "
            "sidecars record) were left out before training, the exclusion criterion of "
            "[@parkes2018]. The runs had 82 to 100 time points and were cropped to their first "
            "82.") in text
    everything = assemble_dataset(runs, table, target="group", max_censored=1.0)
    assert everything.X.shape == (6, 40, 3) and everything.censored_out == {}
    assert assemble_dataset(runs, table, target="group", max_censored=0.0).subjects == [
        "sub-01", "sub-05"]  # no volume censored
    with pytest.raises(ValueError, match="every run .*--confounds simple.*--max-censored"):
        assemble_dataset(runs[2:4], table, target="group", max_censored=0.05)
    # a sidecar that cannot be read records nothing: the run is kept
    (tmp_path / "sub-03_timeseries.json").write_text("{not json")
    assert "sub-03" in assemble_dataset(runs, table, target="group").subjects


def test_feature_sets(tmp_path):
    table = participants(group=["a", "b"] * 3)
    reordered = write_runs(tmp_path, features={2: ["roi-3", "roi-1", "roi-2"]})
    ds = assemble_dataset(reordered, table, target="group")
    original = pd.read_csv(reordered[1][1], sep="\t")
    np.testing.assert_allclose(ds.X[1], original[FEATURES].to_numpy(), rtol=1e-6)
    other = tmp_path / "other"
    other.mkdir()
    runs = write_runs(other, features={4: ["roi-1", "roi-2", "roi-9"]})
    with pytest.raises(ValueError, match=r"sub-04_timeseries.tsv has different features than .*sub-01.*roi-9"):
        assemble_dataset(runs, table, target="group")


def test_errors(tmp_path):
    runs = write_runs(tmp_path)
    table = participants(group=["a", "b"] * 3, age=["30"] * 6)
    with pytest.raises(ValueError, match=r"'diagnosis' given to --target is not in participants.tsv; available columns: group, age"):
        assemble_dataset(runs, table, target="diagnosis")
    with pytest.raises(ValueError, match="'site' given to --cv-group"):
        assemble_dataset(runs, table, target="group", cv_group="site")
    with pytest.raises(ValueError, match=r"only one class \('30'\)"):
        assemble_dataset(runs, table, target="age")
    with pytest.raises(ValueError, match="No timeseries is left"):
        assemble_dataset(runs, participants(group=["n/a"] * 6), target="group")
    with pytest.raises(ValueError, match="No timeseries files"):
        assemble_dataset([], table, target="group")


def test_subject_missing_from_participants(tmp_path, caplog):
    runs = write_runs(tmp_path)
    table = participants(group=["a", "b"] * 3).drop(index="sub-02")
    with caplog.at_level(logging.WARNING, logger="xaibids"):
        ds = assemble_dataset(runs, table, target="group")
    assert "sub-02" not in ds.subjects and "absent from participants.tsv" in caplog.text
