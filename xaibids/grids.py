"""Images on one grid: whether two images share a voxel grid, and one resampled onto another's.

One tolerance for every "same grid, else resample" decision in xaibids (:data:`GRID_ATOL`), and
one call of nilearn's resampling with the options every caller needs. This module imports
nothing of xaibids, so that every layer may import it (``tests/test_architecture.py``).
Resampling is nilearn's (:func:`nilearn.image.resample_to_img`); only the shared decision is
written here.
"""

from __future__ import annotations

import nibabel as nb
import numpy as np

#: Largest difference, in millimetres (or the affine's own units), between two affines of one
#: grid. Two tools writing the same grid round its affine to float32 in the NIfTI header
#: (differences of about 1e-5 mm); grids a thousandth of a millimetre apart are one grid.
GRID_ATOL = 1e-3


def same_grid(a, b) -> bool:
    """Whether images ``a`` and ``b`` share their first three axes and their affine (to
    :data:`GRID_ATOL`)."""
    return (tuple(a.shape[:3]) == tuple(b.shape[:3])
            and np.allclose(a.affine, b.affine, rtol=0, atol=GRID_ATOL))


def on_grid(img, ref, interpolation: str) -> tuple[nb.Nifti1Image, bool]:
    """``img`` on the grid of ``ref``: itself when :func:`same_grid`, else resampled with
    ``interpolation`` (``"nearest"`` for labels and masks, ``"continuous"`` for signals).

    Returns the image and whether it was resampled.
    """
    if same_grid(img, ref):
        return img, False
    from nilearn.image import resample_to_img

    return resample_to_img(img, ref, interpolation=interpolation, force_resample=True,
                           copy_header=True), True
