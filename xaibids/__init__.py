"""xaibids: a BIDS-App for explainable deep learning in neuroimaging.

Data flow, one subpackage per stage:
``inputs`` (BIDS queries, validation) → ``features`` (ROI timecourses) → ``learning`` and
``models`` (seeded ensembles per fold) → ``attribution`` (Captum maps, stabilization) →
``stats`` (group statistics) → ``outputs`` (BIDS derivatives, reports).
``workflows`` wires the participant level with Nipype; ``cli`` is the thin entrypoint.
"""

__version__ = "0.1.0.dev0"
__packagename__ = "xaibids"
__url__ = "https://github.com/xaibids/xaibids"
