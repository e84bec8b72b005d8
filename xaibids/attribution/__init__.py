"""Feature attribution (Captum) and its stabilization over seeded ensembles.

- :mod:`xaibids.attribution.ig`: Integrated Gradients without input multiplication
  (seed 000, §2.3) and IG baselines (seed 001).
- :mod:`xaibids.attribution.registry`: :data:`METHODS`, one interface for all methods.
- :mod:`xaibids.attribution.stabilize`: per-sample selection of the map closest to the
  ensemble mean (seed 000, §2.4).
"""

from xaibids.attribution.ig import BASELINES, integrated_gradients, make_baseline
from xaibids.attribution.registry import METHODS, attribute
from xaibids.attribution.stabilize import POSITIVE_METHODS, STABILIZE_METHODS, stabilize

__all__ = [
    "BASELINES",
    "METHODS",
    "POSITIVE_METHODS",
    "STABILIZE_METHODS",
    "attribute",
    "integrated_gradients",
    "make_baseline",
    "stabilize",
]
