"""Feature extraction: atlases, ROI timecourses and their on-disk format.

The science lives here as plain functions (tested without Nipype); ``xaibids.interfaces`` and
``xaibids.workflows`` only wrap and wire them.
"""
