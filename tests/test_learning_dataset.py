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
