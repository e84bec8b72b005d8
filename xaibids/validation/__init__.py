"""Validation of attribution maps against simulated ground truth (the method papers (Lewis et al. 2023, Strock et al. 2025, Gotsopoulos et al. 2018)).

:mod:`xaibids.validation.metrics` holds the metrics as plain NumPy functions;
:mod:`xaibids.validation.groundtruth` reads what ``xaibids-simulate`` writes;
:mod:`xaibids.validation.score` scores maps in memory (:func:`score_maps`) or an xaibids
``OUTPUT_DIR`` (:func:`score_output`, the ``xaibids-validate`` command).
"""

from xaibids.validation.groundtruth import GroundTruth, find_groundtruth_root
from xaibids.validation.metrics import (
    ROI_THRESHOLD,
    confusion_counts,
    detection_rates,
    euclidean_distance,
    minmax_rescale,
    normalize_max,
    overlap_fraction,
    precision_recall_f1,
    roi_detection,
    roi_scores,
    saliency_quality,
    select_features,
    weighted_jaccard,
)
from xaibids.validation.score import (
    COLUMNS,
    LOWER_IS_BETTER,
    METRICS,
    find_maps,
    score_maps,
    score_output,
    score_subject,
    write_metrics,
)

__all__ = [
    "COLUMNS", "GroundTruth", "LOWER_IS_BETTER", "METRICS", "ROI_THRESHOLD",
    "confusion_counts", "detection_rates", "euclidean_distance", "find_groundtruth_root",
    "find_maps", "minmax_rescale", "normalize_max", "overlap_fraction", "precision_recall_f1",
    "roi_detection", "roi_scores", "saliency_quality", "score_maps", "score_output",
    "score_subject", "select_features", "weighted_jaccard", "write_metrics",
]
