"""Feature attribution (Captum), its stabilization over seeded ensembles and its reliability.

- :mod:`xaibids.attribution.ig`: Integrated Gradients, by default without input multiplication
  (Lewis et al. 2023, §2.3), and IG baselines (Strock et al. 2025).
- :mod:`xaibids.attribution.methods`: the other methods (the method papers (Strock et al. 2025, Kan et al. 2020, Gotsopoulos et al. 2018)), through Captum
  where it has them.
- :mod:`xaibids.attribution.perturbation`: Meaningful Perturbation for volume models
  (Kan et al. 2020, §3.3), hand-written since Captum lacks it.
- :mod:`xaibids.attribution.registry`: :data:`METHODS`, one interface for all methods, with
  defaults, descriptions and citations.
- :mod:`xaibids.attribution.stabilize`: per-sample selection of the map closest to the
  ensemble mean (Lewis et al. 2023, §2.4).
- :mod:`xaibids.attribution.reliability`: the reliability report card (the method papers (Strock et al. 2025, Kan et al. 2020, Thibeau-Sutre et al. 2023, Gotsopoulos et al. 2018)).
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
