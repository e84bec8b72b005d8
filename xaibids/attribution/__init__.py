"""Feature attribution (Captum), its stabilization over seeded ensembles and its reliability.

- :mod:`xaibids.attribution.ig`: Integrated Gradients, by default without input multiplication
  (seed 000, §2.3), and IG baselines (seed 001).
- :mod:`xaibids.attribution.methods`: the other methods (seeds 001, 002, 004), through Captum
  where it has them.
- :mod:`xaibids.attribution.perturbation`: Meaningful Perturbation for volume models
  (seed 002, §3.3), hand-written since Captum lacks it.
- :mod:`xaibids.attribution.registry`: :data:`METHODS`, one interface for all methods, with
  defaults, descriptions and citations.
- :mod:`xaibids.attribution.stabilize`: per-sample selection of the map closest to the
  ensemble mean (seed 000, §2.4).
- :mod:`xaibids.attribution.reliability`: the reliability report card (seeds 001-004).
"""

from xaibids.attribution.ig import BASELINES, IG_RULES, integrated_gradients, make_baseline
from xaibids.attribution.registry import (
    CITATIONS,
    METHODS,
    AttributionMethod,
    attribute,
    check_supported,
    map_keys,
    resolve_params,
)
from xaibids.attribution.reliability import (
    RELIABILITY_FILES,
    baseline_agreement,
    faithfulness,
    method_agreement,
    method_dice,
    permutation_reproducibility,
    randomization_check,
    write_reliability,
)
from xaibids.attribution.stabilize import POSITIVE_METHODS, STABILIZE_METHODS, stabilize

__all__ = [
    "BASELINES",
    "CITATIONS",
    "IG_RULES",
    "METHODS",
    "POSITIVE_METHODS",
    "RELIABILITY_FILES",
    "STABILIZE_METHODS",
    "AttributionMethod",
    "attribute",
    "baseline_agreement",
    "check_supported",
    "faithfulness",
    "integrated_gradients",
    "make_baseline",
    "map_keys",
    "method_agreement",
    "method_dice",
    "permutation_reproducibility",
    "randomization_check",
    "resolve_params",
    "stabilize",
    "write_reliability",
]
