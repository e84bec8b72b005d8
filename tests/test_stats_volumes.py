"""Group statistics of voxel maps (xaibids.stats.volumes), without Nipype."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.stats.volumes import (
    compute_volume_statistics, region_means, volume_image, write_volume_statistics,
)

GRID = (6, 5, 4)
REGIONS = pd.DataFrame({"index": [1, 2, 3], "name": ["small", "target", "large"]})


def _atlas() -> np.ndarray:
    labels = np.zeros(GRID, int)
    labels[:1] = 1          # 20 voxels
    labels[1:3] = 2         # 40 voxels
    labels[3:] = 3          # 60 voxels
    labels[:, 0, 0] = 0     # some background
    return labels


def _maps(n=8, seed=0):
    """Sum-normalized maps: class 1 carries extra mass in region 'target'."""
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2)
    maps = rng.uniform(0, 1, size=(n, 1, int(np.prod(GRID))))
    target = (_atlas() == 2).ravel()
    maps[:, 0, target] += 2.0 + 2.0 * y[:, None]
    return maps / maps.sum(axis=2, keepdims=True), y


def test_region_means_are_plain_means():
    maps, _ = _maps()
    labels = _atlas().ravel()
    out = region_means(maps, labels, [1, 2, 3])
    assert out.shape == (8, 1, 3)
    for j, index in enumerate([1, 2, 3]):
        np.testing.assert_allclose(out[:, 0, j], maps[:, 0, labels == index].mean(axis=1))
    with pytest.raises(ValueError, match="region_means needs maps"):
        region_means(maps[:, :, :10], labels, [1])


def test_target_region_first_and_larger_in_its_class():
    maps, y = _maps()
    maps[1] = np.nan  # a sample that was not attributed is left out
    stats = compute_volume_statistics(maps, y, ["a", "b"], GRID, _atlas(), REGIONS,
                                      n_boot=20)
    assert stats.ranking["region"].iloc[0] == "target"
    top = stats.importance.sort_values("importance_norm", ascending=False)
    assert top["feature"].iloc[0] == "target"
    assert top.set_index("feature").loc["target", "cohens_d"] > 1
    assert stats.mean_map.shape == GRID and np.isfinite(stats.mean_map).all()
    assert stats.parameters["NSamplesAttributed"] == 7
    with pytest.raises(ValueError, match="on the map grid"):
        compute_volume_statistics(maps, y, ["a", "b"], GRID, _atlas()[:5], REGIONS)


def test_written_files_and_affine(tmp_path):
    maps, y = _maps()
    stats = compute_volume_statistics(maps, y, ["a", "b"], GRID, _atlas(), REGIONS, n_boot=0)
    affine = np.array([[3.0, 0, 0, -9], [0, 3, 0, -7], [0, 0, 3, -6], [0, 0, 0, 1]])
    mask = _atlas() > 0
    written = write_volume_statistics(stats, tmp_path, "ig", affine, "MNI152NLin2009aSym",
                                      mask=mask, atlas="toy")
    names = {p.name for p in written}
    assert {"desc-ig_importance.tsv", "desc-ig_regions.tsv",
            "space-MNI152NLin2009aSym_desc-ig_importance.nii.gz"} <= names
    img = nb.load(tmp_path / "space-MNI152NLin2009aSym_desc-ig_importance.nii.gz")
    np.testing.assert_array_equal(img.affine, affine)
    assert np.all(np.asarray(img.dataobj)[~mask] == 0)
    assert json.loads((tmp_path / "desc-ig_importance.json").read_text())["Atlas"] == "toy"
    assert volume_image(np.ones(GRID), affine).header["sform_code"] == 4
