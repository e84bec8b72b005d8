"""The bottom layer: plain types for JSON, atomic writes, one grid decision."""

import json
import math
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from xaibids.fileio import atomic_write_text, jsonable
from xaibids.grids import GRID_ATOL, on_grid, same_grid


def test_jsonable_gives_plain_types_through_nesting():
    value = {"a": np.float32(0.5), "b": np.arange(3), "c": (np.int64(2), {np.bool_(True)}),
             "d": [Path("x") / "y.tsv", np.array([[1.5, np.nan]])], 1: "int key"}
    plain = jsonable(value)
    assert plain == {"a": 0.5, "b": [0, 1, 2], "c": [2, [True]], "d": ["x/y.tsv", [[1.5, plain["d"][1][0][1]]]],
                     1: "int key"}
    assert type(plain["a"]) is float and type(plain["b"][0]) is int
    assert math.isnan(plain["d"][1][0][1])  # kept unless finite=True
    assert json.loads(json.dumps(plain))["1"] == "int key"


def test_jsonable_finite_writes_null_for_nan_and_infinities():
    plain = jsonable({"q": np.array([0.01, np.nan]), "z": float("inf"), "n": np.float64(-np.inf),
                      "k": 3}, finite=True)
    assert plain == {"q": [0.01, None], "z": None, "n": None, "k": 3}
    assert "NaN" not in json.dumps(plain) and "Infinity" not in json.dumps(plain)


def test_jsonable_leaves_unknown_types_for_json_to_refuse():
    with pytest.raises(TypeError):
        json.dumps(jsonable({"x": object()}))


def test_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    path = atomic_write_text(tmp_path / "table.tsv", "old\n")
    monkeypatch.setattr("os.replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        atomic_write_text(path, "new\n")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.tsv"]


def test_one_grid_up_to_float32_rounding_of_the_affine():
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-90.0, -126.0, -72.0]
    img = nb.Nifti1Image(np.zeros((4, 5, 6, 3), np.float32), affine)
    rounded = nb.Nifti1Image(np.zeros((4, 5, 6)), affine.astype(np.float32) + 1e-5)
    assert same_grid(img, rounded)  # 4D against 3D: the first three axes
    assert not same_grid(img, nb.Nifti1Image(np.zeros((4, 5, 6)), affine + 10 * GRID_ATOL))
    assert not same_grid(img, nb.Nifti1Image(np.zeros((4, 5, 7)), affine))


def test_on_grid_resamples_only_other_grids():
    labels = np.zeros((6, 6, 6), np.int16)
    labels[:3] = 1
    labels[3:] = 2
    img = nb.Nifti1Image(labels, np.eye(4))
    same, moved = on_grid(img, nb.Nifti1Image(np.zeros((6, 6, 6)), np.eye(4)), "nearest")
    assert same is img and not moved
    coarse = nb.Nifti1Image(np.zeros((3, 3, 3)), np.diag([2.0, 2.0, 2.0, 1.0]))
    out, moved = on_grid(img, coarse, "nearest")
    assert moved and same_grid(out, coarse)
    assert set(np.unique(np.asarray(out.dataobj))) <= {0, 1, 2}  # labels stay labels
