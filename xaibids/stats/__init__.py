"""Group statistics of stabilized attribution maps (seed 000 §2.7, seed 001)."""

from xaibids.stats.importance import SELECTION_THRESHOLD, cohens_d, group_importance

__all__ = ["SELECTION_THRESHOLD", "cohens_d", "group_importance"]
