"""Is the classifier above chance? The verdict every group run ends with.

The maps explain a model; when the model did not learn the target, they explain nothing about
the brain. :func:`classifier_verdict` tests the ensemble's out-of-fold predictions:

- **balanced accuracy** (mean recall over classes) of the ensemble's out-of-fold predictions of
  every sample, with **chance** ``1 / n_classes``;
- a **permutation test** of the predictions against the labels: the labels are shuffled
  ``n_permutations`` times while the predictions stay fixed (by subject when each subject has
  one class, so that the runs of a subject move together; within subjects when classes vary
  within subjects, as for single trials), and ``p = (1 + #{null >= observed}) / (1 +
  n_permutations)``. It tests whether predictions and labels are independent. Under
  cross-validation with no signal, out-of-fold predictions tend to fall *below* chance (each
  fold's training set is tilted against the left-out class), so the test errs on the
  conservative side there;
- a **credible interval** of the balanced accuracy from its posterior under flat priors
  (Brodersen et al. 2010, "The balanced accuracy and its posterior distribution", ICPR): each
  class's recall is ``Beta(correct + 1, wrong + 1)``, the balanced accuracy their mean, its
  quantiles by Monte Carlo.

``above_chance`` is ``p_value <= alpha``. Hand-written: the grouped label permutation and
Brodersen's interval are not in scikit-learn (its ``permutation_test_score`` refits the model
for every permutation, which here would mean training every ensemble again).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

#: Label permutations of the test, and Monte Carlo draws of the interval.
N_PERMUTATIONS = 10000
N_POSTERIOR_DRAWS = 100000
#: Permutations scored at once (memory: batch x samples booleans).
PERMUTATION_BATCH = 500


@dataclass
class Verdict:
    """The classifier's verdict (:func:`classifier_verdict`).

    Attributes
    ----------
    balanced_accuracy, accuracy : float
        Of the out-of-fold ensemble predictions over all samples.
    chance : float
        ``1 / n_classes``.
    p_value : float
        Permutation p-value of the balanced accuracy.
    ci_low, ci_high : float
        Credible interval of the balanced accuracy (Brodersen et al. 2010).
    ci_level, alpha : float
    above_chance : bool
        ``p_value <= alpha``.
    n_samples, n_permutations : int
    permuted : str
        ``subjects`` or ``within-subjects``: what the permutations shuffled.
    """

    balanced_accuracy: float
    accuracy: float
    chance: float
    p_value: float
    ci_low: float
    ci_high: float
    ci_level: float
    alpha: float
    above_chance: bool
    n_samples: int
    n_permutations: int
    permuted: str

    def sentence(self) -> str:
        """The verdict in plain words."""
        figures = (f"balanced accuracy {self.balanced_accuracy:.3f} (chance {self.chance:.3f}; "
                   f"{self.ci_level:.0%} interval {self.ci_low:.3f}-{self.ci_high:.3f}; "
                   f"permutation p = {self.p_value:.4f}, {self.n_samples} samples)")
        if self.above_chance:
            return f"The classifier is above chance: {figures}."
        return (f"The classifier is NOT above chance: {figures}. The maps explain a model that "
                "did not learn the target; no feature is selected.")

    def to_dict(self) -> dict:
        return asdict(self)


def _balanced_accuracy(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """Balanced accuracy of each row of ``labels`` (shape ``(batch, n)``) against fixed
    ``predictions``; classes absent from a row are left out of its mean."""
    recalls = []
    for k in range(n_classes):
        members = labels == k
        count = members.sum(axis=1)
        hits = (members & (predictions == k)).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            recalls.append(np.where(count > 0, hits / np.maximum(count, 1), np.nan))
    return np.nanmean(np.stack(recalls), axis=0)


def _permuted_labels(rng, y, codes, by_subject: bool, batch: int) -> np.ndarray:
    """``batch`` shuffles of ``y``: of the subjects' labels, or within each subject."""
    if by_subject:
        first = np.unique(codes, return_index=True)[1]
        subject_y = y[first]  # one label per subject code, in code order
        order = np.argsort(rng.random((batch, len(subject_y))), axis=1)
        return subject_y[order][:, codes]
    base = np.argsort(codes, kind="stable")  # samples grouped by subject
    order = np.argsort(codes[base][None, :] + rng.random((batch, len(y))), axis=1)
    out = np.empty((batch, len(y)), dtype=y.dtype)
    out[:, base] = y[base][order]
    return out


def classifier_verdict(y_true, y_pred, n_classes: int, subjects=None, alpha: float = 0.05,
                       n_permutations: int = N_PERMUTATIONS, ci_level: float = 0.95,
                       random_state=0) -> Verdict:
    """Test out-of-fold predictions against chance (module docstring).

    Parameters
    ----------
    y_true, y_pred : array-like of int, shape (n_samples,)
        True and predicted class indices (samples without a prediction are left out: give
        only predicted ones).
    n_classes : int
    subjects : array-like of shape (n_samples,), optional
        Subject of each sample (each sample its own subject when omitted).
    alpha : float, default=0.05
        Level of the test.
    n_permutations : int, default=10000
    ci_level : float, default=0.95
    random_state : int
        Seed of the permutations and of the posterior draws.

    Returns
    -------
    Verdict
    """
    y = np.asarray(y_true).astype(int)
    pred = np.asarray(y_pred).astype(int)
    if y.shape != pred.shape or y.ndim != 1 or not len(y):
        raise ValueError(f"classifier_verdict needs equal-length 1-D labels and predictions, "
                         f"got {y.shape} and {pred.shape}.")
    if not 0 < alpha < 1 or not 0 < ci_level < 1:
        raise ValueError(f"classifier_verdict alpha and ci_level must lie in (0, 1), got "
                         f"{alpha!r} and {ci_level!r}.")
    if int(n_permutations) < 1:
        raise ValueError(f"classifier_verdict needs at least one permutation, got "
                         f"{n_permutations!r}.")
    subjects = np.arange(len(y)) if subjects is None else np.asarray(subjects, dtype=object)
    codes = np.unique(subjects.astype(str), return_inverse=True)[1]
    first = np.unique(codes, return_index=True)[1]
    by_subject = bool(np.all(y == y[first][codes]))
    observed = float(_balanced_accuracy(y[None, :], pred, n_classes)[0])
    rng = np.random.default_rng([int(random_state), 2010])
    exceed, done = 0, 0
    while done < n_permutations:
        batch = min(PERMUTATION_BATCH, n_permutations - done)
        null = _balanced_accuracy(_permuted_labels(rng, y, codes, by_subject, batch), pred,
                                  n_classes)
        exceed += int(np.sum(null >= observed - 1e-12))
        done += batch
    p_value = (1 + exceed) / (1 + n_permutations)
    # Brodersen et al. 2010: recall of class k ~ Beta(hits + 1, misses + 1), independent
    draws = np.zeros(N_POSTERIOR_DRAWS)
    present = [k for k in range(n_classes) if np.any(y == k)]
    for k in present:
        hits = int(np.sum((y == k) & (pred == k)))
        draws += rng.beta(hits + 1, int(np.sum(y == k)) - hits + 1, N_POSTERIOR_DRAWS)
    draws /= len(present)
    low, high = np.quantile(draws, [(1 - ci_level) / 2, (1 + ci_level) / 2])
    return Verdict(
        balanced_accuracy=observed, accuracy=float(np.mean(y == pred)), chance=1 / n_classes,
        p_value=float(p_value), ci_low=float(low), ci_high=float(high),
        ci_level=float(ci_level), alpha=float(alpha), above_chance=bool(p_value <= alpha),
        n_samples=int(len(y)), n_permutations=int(n_permutations),
        permuted="subjects" if by_subject else "within-subjects",
    )


def out_of_fold_verdict(map_info: list, n_classes: int, alpha: float = 0.05,
                        random_state=0) -> Verdict:
    """:func:`classifier_verdict` of an ensemble's out-of-fold predictions
    (:attr:`xaibids.learning.ensemble.EnsembleResult.map_info`: ``true_index``,
    ``prediction_index`` and ``subject`` of every predicted sample)."""
    rows = [info for info in map_info if info is not None]
    return classifier_verdict([r["true_index"] for r in rows],
                              [r["prediction_index"] for r in rows], n_classes,
                              subjects=[r["subject"] for r in rows], alpha=alpha,
                              random_state=random_state)


#: Columns the verdict adds to ``desc-performance_metrics.tsv`` (n/a on the per-fold rows).
VERDICT_COLUMNS = ["chance", "p_value", "ci_low", "ci_high", "above_chance"]


def performance_with_verdict(performance, verdict: Verdict):
    """The per-fold performance table with one more row, ``fold`` = ``all``, ``model`` =
    ``ensemble``: the out-of-fold accuracy and balanced accuracy over every sample and the
    verdict's columns."""
    import pandas as pd

    row = {"fold": "all", "model": "ensemble",
           "n_models": performance["n_models"].max() if len(performance) else np.nan,
           "accuracy": verdict.accuracy, "balanced_accuracy": verdict.balanced_accuracy,
           "loss": np.nan, "chance": verdict.chance, "p_value": verdict.p_value,
           "ci_low": verdict.ci_low, "ci_high": verdict.ci_high,
           "above_chance": verdict.above_chance}
    table = performance.astype({"fold": object})
    return pd.concat([table, pd.DataFrame([row])], ignore_index=True)


def verdict_sidecar(verdict: Verdict) -> dict:
    """JSON sidecar of ``desc-performance_metrics.tsv``."""
    return {
        "Description": ("Classification performance per fold (out-of-fold test samples) and, in "
                        "the row fold = all, over every sample with the verdict: is the "
                        "ensemble above chance?"),
        "Verdict": verdict.sentence(),
        "Test": ("Permutation test of the balanced accuracy of the out-of-fold ensemble "
                 f"predictions: labels shuffled {verdict.n_permutations} times "
                 f"({verdict.permuted}) with the predictions fixed; p = (1 + #null >= "
                 "observed) / (1 + permutations)."),
        "Interval": (f"{verdict.ci_level:.0%} credible interval of the balanced accuracy: the "
                     "mean of independent Beta(correct + 1, wrong + 1) posteriors of each "
                     "class's recall (Brodersen et al. 2010)."),
        "Alpha": verdict.alpha,
        "fold": {"Description": "Fold number, or 'all' for the out-of-fold predictions of "
                                "every sample."},
        "model": {"Description": "Model seed, or 'ensemble' (mean of the models' softmax)."},
        "n_models": {"Description": "Models in the fold's ensemble."},
        "accuracy": {"Description": "Share of correctly classified test samples."},
        "balanced_accuracy": {"Description": "Mean recall over the classes."},
        "loss": {"Description": "Mean test cross-entropy."},
        "chance": {"Description": "Balanced accuracy expected by chance (1 / classes)."},
        "p_value": {"Description": "Permutation p-value of balanced_accuracy against chance."},
        "ci_low": {"Description": "Lower bound of the credible interval."},
        "ci_high": {"Description": "Upper bound of the credible interval."},
        "above_chance": {"Description": f"p_value <= {verdict.alpha:g}."},
    }
