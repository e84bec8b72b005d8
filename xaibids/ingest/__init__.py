"""Convert third-party datasets into BIDS (``xaibids-ingest FORMAT …``).

Formats:

``abide-pcp``
    ABIDE Preprocessed Connectomes Project ROI timecourses (``*_rois_<atlas>.1D``) plus the
    ABIDE phenotypic CSV → a BIDS raw dataset (``participants.tsv`` with ``diagnosis``, ``sex``,
    ``site``, ``age``) and an XCP-D-style timeseries derivatives dataset;
    :mod:`xaibids.ingest.abide`.
"""

from __future__ import annotations

FORMATS = ("abide-pcp",)


class IngestError(ValueError):
    """Bad input for an ingest; the message names the file and how to fix it."""
