"""What every simulator returns, and the random streams they draw from.

Random numbers come from :class:`numpy.random.SeedSequence` streams keyed by purpose, so
that a subject's data depend only on ``(seed, subject index)`` and on the dataset-level draws
(class labels, shared matrices, graph), never on the order in which things are computed:

* ``stream(seed, 0)`` — dataset level (labels, VAR matrices, graph, affected nodes);
* ``stream(seed, 1, i)`` — subject ``i`` (0-based);
* ``stream(seed, 2, …)`` — reference runs (e.g. the noise level of an SNR), and
* ``stream(seed, 3, i)`` — subject ``i``'s imaging extras (motion, spatial noise) in ``bold``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd


def stream(seed: int, *key: int) -> np.random.Generator:
    """Independent generator for ``(seed, key)``."""
    return np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=tuple(key)))


def balanced_labels(n_subjects: int, rng: np.random.Generator) -> np.ndarray:
    """Class labels 0/1 in random order, as balanced as ``n_subjects`` allows.

    The seed papers draw labels at random; a shuffled balanced split keeps the small datasets
    of tests and demos from ending up with a single class.
    """
    return rng.permutation(np.arange(n_subjects) % 2).astype(int)


@dataclass
class TimeseriesSimulation:
    """A simulated two-class timeseries dataset with its ground truth.

    Attributes
    ----------
    kind : str
        Simulator name (``boxes``, ``var``, ``rnn-ei``).
    data : ndarray, shape (n_subjects, n_timepoints, n_features)
    labels : ndarray of int, shape (n_subjects,)
        Class 0 or 1.
    group_levels : tuple of str
        The ``group`` value written for class 0 and class 1.
    group_descriptions : tuple of str
        What each class is, for ``participants.json``.
    feature_names : list of str
    truth : ndarray of bool, shape like ``data``
        True where the element carries class information (the seed's ground-truth mask).
    onsets, durations : ndarray of int, shape (n_subjects,)
        First relevant time step (0-based) and number of relevant steps per subject.
    relevant_features : list of list of str
        Per subject, the features that carry class information.
    repetition_time : float
        Sampling period in seconds (written as ``RepetitionTime``).
    task : str, atlas : str
        BIDS ``task-`` and ``atlas-`` labels of the timeseries files.
    params : dict
        Every parameter of the simulation (written to ``simulation.json``).
    tables : dict of str → DataFrame
        Dataset-level tables written beside the ground truth (e.g. VAR matrices).
    description : str
        Markdown paragraph for the README: what was simulated and how.
    """

    kind: str
    data: np.ndarray
    labels: np.ndarray
    group_levels: tuple[str, str]
    group_descriptions: tuple[str, str]
    feature_names: list[str]
    truth: np.ndarray
    onsets: np.ndarray
    durations: np.ndarray
    relevant_features: list[list[str]]
    repetition_time: float
    task: str
    atlas: str
    params: dict
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    description: str = ""

    @property
    def n_subjects(self) -> int:
        return int(self.data.shape[0])
