"""Atlas resolution: bundled names, NIfTI + TSV, BIDS-Atlas datasets; timeseries TSV format."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.features.atlases import BUNDLED_ATLASES, AtlasError, load_atlas
from xaibids.fileio import read_timeseries_tsv, write_timeseries_tsv


def test_bundled_probabilistic_atlas_is_maxprob_labels():
    atlas = load_atlas("harvard-oxford")
    assert atlas.name == "HarvardOxford" and atlas.space == "MNI152NLin6Asym"
    data = np.asarray(atlas.img.dataobj)
    assert data.ndim == 3 and set(np.unique(data)) - {0} == set(atlas.labels["index"])
    assert atlas.labels.iloc[0].tolist() == [1, "Left_Frontal_Pole"]


def test_every_bundled_name_resolves():
    for name in BUNDLED_ATLASES:
        if name in ("harvard-oxford", "juelich"):
            continue  # the probabilistic ones are covered above (slow to convert)
        atlas = load_atlas(name)
        assert len(atlas.labels) > 10


def _label_image(tmp_path, name):
    data = np.zeros((4, 4, 4), dtype=np.int16)
    data[:2] = 1
    data[2:, :2] = 5
    path = tmp_path / name
    nb.save(nb.Nifti1Image(data, np.diag([2.0, 2, 2, 1])), path)
    return path


def test_atlas_path_with_labels_tsv(tmp_path):
    path = _label_image(tmp_path, "myatlas.nii.gz")
    with pytest.raises(AtlasError, match="myatlas.tsv"):
        load_atlas(path)
    pd.DataFrame({"index": [1, 5, 9], "name": ["a", "b", "absent"]}).to_csv(
        tmp_path / "myatlas.tsv", sep="\t", index=False)
    atlas = load_atlas(path)
    assert atlas.name == "myatlas" and atlas.region_names == ["a", "b"]
    assert atlas.domains == {}


@pytest.mark.parametrize("column", ["network_label", "network", "domain", "group"])
def test_atlas_labels_network_column_gives_domains(tmp_path, column):
    path = _label_image(tmp_path, "myatlas.nii.gz")
    pd.DataFrame({"index": [1, 5], "name": ["a", "b"], column: ["Vis", "n/a"]}).to_csv(
        tmp_path / "myatlas.tsv", sep="\t", index=False)
    assert load_atlas(path).domains == {"a": "Vis"}


def test_bids_atlas_dataset(tmp_path):
    root = tmp_path / "atlas-ds"
    (root / "tpl-MNI152NLin6Asym").mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "a", "BIDSVersion": "1.10.0"}))
    path = _label_image(root / "tpl-MNI152NLin6Asym", "tpl-MNI152NLin6Asym_atlas-Toy_dseg.nii.gz")
    pd.DataFrame({"index": [1, 5], "name": ["x", "y"]}).to_csv(
        path.with_name("tpl-MNI152NLin6Asym_atlas-Toy_dseg.tsv"), sep="\t", index=False)
    atlas = load_atlas(root)
    assert (atlas.name, atlas.space, atlas.region_names) == ("Toy", "MNI152NLin6Asym", ["x", "y"])


def test_unknown_atlas_lists_choices():
    with pytest.raises(AtlasError, match="harvard-oxford"):
        load_atlas("shaefer")


def test_timeseries_tsv_roundtrip(tmp_path):
    data = np.array([[1.0, np.nan], [2.5, np.nan]])
    path = write_timeseries_tsv(data, ["r1", "r2"], tmp_path / "ts.tsv")
    assert path.read_text().splitlines()[1] == "1\tn/a"
    frame = read_timeseries_tsv(path)
    np.testing.assert_array_equal(frame.to_numpy(), data)
    (tmp_path / "bad.tsv").write_text("r1\tr2\nx\t1\n")
    with pytest.raises(ValueError, match="bad.tsv.*non-numeric"):
        read_timeseries_tsv(tmp_path / "bad.tsv")
