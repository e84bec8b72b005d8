"""Group statistics of stabilized attribution maps (Lewis et al. 2023 §2.7–2.8, §3; Strock et al. 2025; Kan et al. 2020).

The lead's entry points are :func:`compute_group_statistics` and :func:`write_group_statistics`
(plus :func:`rank_regions` / :func:`write_region_ranking` for voxel maps); which features are
selected (:mod:`~xaibids.stats.selection`) and whether the classifier is above chance at all
(:mod:`~xaibids.stats.verdict`).
"""

from xaibids.stats.communities import Communities, community_graph, detect_communities
from xaibids.stats.connectivity import (
    ConnectivityStatistics,
    connectivity_statistics,
    correlation_edges,
    edges_to_matrix,
    fisher_z,
)
from xaibids.stats.group import GroupStatistics, compute_group_statistics, write_group_statistics
from xaibids.stats.importance import (
    bootstrap_cohens_d_ci,
    cohens_d,
    domain_importance,
    group_importance,
    load_feature_groups,
    subject_importance,
)
from xaibids.stats.regions import REGION_THRESHOLD, rank_regions, write_region_ranking
from xaibids.stats.selection import SELECTION_RULES, SELECTION_THRESHOLD, SelectionRule
from xaibids.stats.verdict import Verdict, classifier_verdict

__all__ = [
    "REGION_THRESHOLD",
    "SELECTION_RULES",
    "SELECTION_THRESHOLD",
    "SelectionRule",
    "Verdict",
    "Communities",
    "ConnectivityStatistics",
    "GroupStatistics",
    "bootstrap_cohens_d_ci",
    "classifier_verdict",
    "cohens_d",
    "community_graph",
    "compute_group_statistics",
    "connectivity_statistics",
    "correlation_edges",
    "detect_communities",
    "domain_importance",
    "edges_to_matrix",
    "fisher_z",
    "group_importance",
    "load_feature_groups",
    "rank_regions",
    "subject_importance",
    "write_group_statistics",
    "write_region_ranking",
]
