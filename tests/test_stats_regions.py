"""Tests of the atlas ranking of voxel maps (Kan et al. 2020, Table 2)."""

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from xaibids.stats import rank_regions, write_region_ranking


def _atlas():
    labels = np.zeros((10, 10, 10), dtype=np.int16)
    labels[:5, :, :] = 1  # 500 voxels
    labels[5:, :5, :] = 2  # 250 voxels
    labels[5:, 5:, :5] = 7  # 125 voxels; the rest is background
    names = pd.DataFrame({"index": [1, 2, 7], "name": ["Left", "RightFront", "RightBack"]})
    return labels, names


def test_planted_region_first_and_shares_sum_to_one():
    labels, names = _atlas()
    stat = np.zeros(labels.shape)
    stat[5:, :5, :4] = 1.0  # 100 of region 2's 250 voxels
    stat[:2, :2, :5] = 0.8  # 20 of region 1's 500 voxels
    stat[9, 9, 9] = 0.2  # background, below threshold anyway
    table = rank_regions(stat, labels, names, threshold=0.65)
    assert list(table.columns) == ["region", "index", "share", "rank"]
    assert table.share.sum() == pytest.approx(1.0)
    assert table.region.tolist() == ["RightFront", "Left", "RightBack"]
    assert table["rank"].tolist() == [1, 2, 3]
    fractions = np.array([100 / 250, 20 / 500, 0.0])  # Kan et al. 2020: fraction of each region
    np.testing.assert_allclose(table.share, fractions / fractions.sum())
    # mask fraction instead: share of the mask's voxels
    mask = rank_regions(stat, labels, names, measure="mask_fraction")
    np.testing.assert_allclose(mask.share, [100 / 120, 20 / 120, 0.0])
    # a higher threshold drops region 1; top keeps the best
    high = rank_regions(stat, labels, names, threshold=0.9, top=1)
    assert high.region.tolist() == ["RightFront"] and high.share.iloc[0] == 1.0
    # 4D maps are summed over time; absolute threshold
    stat4 = np.stack([stat / 2, stat / 2], axis=-1)
    absolute = rank_regions(stat4, labels, names, threshold=0.6, relative=False)
    np.testing.assert_allclose(absolute.share, table.share)


def test_resampled_atlas_and_labels_tsv(tmp_path):
    labels, names = _atlas()
    atlas_img = nb.Nifti1Image(labels, np.diag([2.0, 2.0, 2.0, 1.0]))
    # the map on a 1 mm grid over the same field of view
    stat = np.zeros((20, 20, 20))
    stat[10:, :10, :8] = 1.0  # region 2 in atlas space
    map_img = nb.Nifti1Image(stat, np.eye(4))
    tsv = tmp_path / "atlas.tsv"
    names.to_csv(tsv, sep="\t", index=False)
    map_path = tmp_path / "map.nii.gz"
    map_img.to_filename(map_path)
    table = rank_regions(map_path, atlas_img, tsv)
    assert table.region.iloc[0] == "RightFront"
    assert table.share.sum() == pytest.approx(1.0)
    files = write_region_ranking(table, tmp_path / "group", "gradcam",
                                 {"Threshold": 0.65, "Atlas": "toy"})
    assert [f.name for f in files] == ["desc-gradcam_regions.tsv", "desc-gradcam_regions.json"]
    back = pd.read_csv(files[0], sep="\t")
    assert list(back.columns) == ["region", "index", "share", "rank"]


def test_region_errors():
    labels, names = _atlas()
    stat = np.ones(labels.shape)
    with pytest.raises(ValueError, match="without a name"):
        rank_regions(stat, labels, names[names["index"] != 7])
    with pytest.raises(ValueError, match="different grids"):
        rank_regions(np.ones((4, 4, 4)), labels, names)
    with pytest.raises(ValueError, match="zero everywhere"):
        rank_regions(np.zeros(labels.shape), labels, names)
    with pytest.raises(ValueError, match="measure"):
        rank_regions(stat, labels, names, measure="volume")
    with pytest.raises(ValueError, match="'index'"):
        rank_regions(stat, labels, pd.DataFrame({"id": [1], "label": ["x"]}))
    with pytest.raises(ValueError, match="alphanumeric map key"):
        write_region_ranking(rank_regions(stat, labels, names), "/tmp", "Grad-CAM")


def test_reference_regions_by_majority_of_voxels():
    """Each parcel is named after the reference region holding most of its voxels; the share
    counts voxels outside every reference region in its denominator. The reference is on a
    grid twice as fine (resampled by nearest neighbour)."""
    from xaibids.stats.regions import reference_regions

    atlas = np.zeros((4, 4, 4), dtype=np.int16)
    atlas[:2, :2, :2] = 1          # 8 voxels, all in reference region 10
    atlas[2:, :, :2] = 2           # 16 voxels: 6 in region 20, 2 in 30, 8 outside
    atlas[:2, 2:, 2:] = 3          # 8 voxels, none in a reference region
    reference = np.zeros((4, 4, 4), dtype=np.int16)
    reference[:2, :2, :2] = 10
    reference[2:, :3, :1] = 20
    reference[2:, 3:, :1] = 30
    fine = np.kron(reference, np.ones((2, 2, 2), dtype=np.int16))
    # coarse voxel j (2 mm) is centred at 2j mm; fine voxels 2j, 2j + 1 at 2j -/+ 0.5 mm
    fine_affine = np.eye(4)
    fine_affine[:3, 3] = -0.5
    table = reference_regions(
        nb.Nifti1Image(atlas, np.diag([2.0, 2.0, 2.0, 1.0])),
        pd.DataFrame({"index": [1, 2, 3], "name": ["p1", "p2", "p3"]}),
        nb.Nifti1Image(fine, fine_affine), {10: "A", 20: "B", 30: "C"})
    assert table["name"].tolist() == ["p1", "p2", "p3"]
    assert table["reference_region"].tolist()[:2] == ["A", "B"]
    assert pd.isna(table["reference_region"].iloc[2])
    np.testing.assert_allclose(table["reference_share"], [1.0, 6 / 16, 0.0])
