"""Shared validation and subject handling for the group statistics (Lewis et al. 2023 §2.7–2.8).

Lewis et al. 2023 works *per subject* (§2.4: "one map for each subject"; §2.7: "for each subject"). A
dataset may hold several runs of one subject; every statistic here first reduces the samples of a
subject to one value by averaging (time-summed importance: arithmetic mean over the subject's
runs; correlations: mean of the Fisher z values over the subject's runs), so that each subject
counts once in class means, effect sizes, bootstrap resamples and t-tests.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from scipy import sparse


def check_labels(y, n_samples: int, classes, who: str) -> np.ndarray:
    """Validate class indices ``y`` against ``classes``; returns ``y`` as an int array."""
    y = np.asarray(y)
    if y.shape != (n_samples,):
        raise ValueError(f"{who} got {n_samples} samples but labels of shape {y.shape}.")
    if len(classes) < 2:
        raise ValueError(f"{who} needs at least two classes, got {list(classes)!r}.")
    if n_samples and not np.issubdtype(y.dtype, np.integer):
        if not np.all(np.equal(np.mod(y, 1), 0)):
            raise ValueError(f"{who} needs integer class indices in y, got dtype {y.dtype}.")
    y = y.astype(int)
    if n_samples and (y.min() < 0 or y.max() >= len(classes)):
        raise ValueError(f"{who} labels must index {len(classes)} classes, got {np.unique(y)}.")
    return y


@dataclass
class SubjectIndex:
    """Which samples belong to which subject.

    Attributes
    ----------
    subjects : list of str
        Unique subjects in order of first appearance.
    sample_subject : ndarray of shape (n_samples,)
        Index into ``subjects`` of each sample.
    y : ndarray of shape (n_subjects,)
        Class index of each subject.
    """

    subjects: list
    sample_subject: np.ndarray
    y: np.ndarray

    def aggregate(self, values: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Mean of ``values`` over each subject's samples, ignoring NaN.

        Parameters
        ----------
        values : ndarray of shape (n_rows, ...)
            One row per sample in ``rows`` (all samples when ``rows`` is None).
        rows : ndarray of int, optional
            Sample indices of the rows of ``values``.

        Returns
        -------
        ndarray of shape (n_subjects, ...)
            NaN where a subject has no finite value (or no row).
        """
        rows = np.arange(len(self.sample_subject)) if rows is None else np.asarray(rows)
        flat = values.reshape(len(rows), -1)
        finite = np.isfinite(flat)
        member = sparse.csr_matrix(
            (np.ones(len(rows)), (self.sample_subject[rows], np.arange(len(rows)))),
            shape=(len(self.subjects), len(rows)),
        )
        sums = np.asarray(member @ np.where(finite, flat, 0.0))
        counts = np.asarray(member @ finite.astype(float))
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(counts > 0, sums / np.where(counts > 0, counts, 1.0), np.nan)
        return mean.reshape((len(self.subjects),) + values.shape[1:])


def subject_index(y: np.ndarray, subjects=None, who: str = "group statistics") -> SubjectIndex:
    """Group samples by subject (each sample its own subject when ``subjects`` is None).

    Raises
    ------
    ValueError
        If ``subjects`` has the wrong length or one subject has samples of different classes.
    """
    n = len(y)
    if subjects is None:
        return SubjectIndex([str(i) for i in range(n)], np.arange(n), np.asarray(y, int))
    subjects = np.asarray(subjects, dtype=object).astype(str)
    if subjects.shape != (n,):
        raise ValueError(f"{who} got {n} samples but subjects of shape {subjects.shape}.")
    unique, first, inverse = np.unique(subjects, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")  # order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    sample_subject = rank[inverse]
    subject_y = np.asarray(y, int)[first[order]]
    mixed = sample_subject[np.asarray(y, int) != subject_y[sample_subject]]
    if mixed.size:
        names = sorted({str(unique[order][i]) for i in mixed})
        raise ValueError(
            f"{who}: subject(s) {', '.join(names[:5])} have samples of different classes; "
            "a subject must belong to one class."
        )
    return SubjectIndex([str(s) for s in unique[order]], sample_subject, subject_y)


def statistical_units(subjects, y) -> list[str] | None:
    """The unit each sample counts toward in the group statistics.

    Its subject (as :func:`subject_index` expects), except where classes vary within subjects
    (single trials of several categories, Gotsopoulos et al. 2018): there a subject's samples of one class form
    one unit, ``<subject>|<class index>``, so that each subject counts once per class. Returns
    None when ``subjects`` is None.
    """
    if subjects is None:
        return None
    subjects = np.asarray(subjects, dtype=object).astype(str)
    y = np.asarray(y, int)
    first = {}
    mixed = any(first.setdefault(s, c) != c for s, c in zip(subjects, y))
    return [f"{s}|{c}" for s, c in zip(subjects, y)] if mixed else subjects.tolist()


def attributed_samples(maps: np.ndarray, who: str) -> np.ndarray:
    """Boolean mask of samples whose map is not all-NaN (not attributed samples are all-NaN)."""
    attributed = ~np.all(np.isnan(maps), axis=tuple(range(1, maps.ndim)))
    if not attributed.any():
        raise ValueError(f"{who} got no attributed sample (all maps are NaN).")
    return attributed


def entity_label(label, who: str = "label") -> str:
    """Alphanumeric form of a label for a BIDS entity value (``class-<label>``)."""
    clean = re.sub(r"[^A-Za-z0-9]", "", str(label))
    if not clean:
        raise ValueError(f"The {who} {label!r} has no letter or digit to use in a file name.")
    return clean


def class_entities(classes) -> list[str]:
    """Sanitized, distinct entity labels of ``classes``."""
    labels = [entity_label(c, "class label") for c in classes]
    if len(set(labels)) != len(labels):
        raise ValueError(
            f"The class labels {list(classes)!r} give clashing file-name labels {labels!r} once "
            "reduced to letters and digits; rename the classes in participants.tsv."
        )
    return labels
