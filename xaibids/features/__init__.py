"""Feature extraction: atlases, ROI and ICA timecourses, T1 volumes, single-trial maps, and the
timecourses' on-disk format.

The science lives here as plain functions (tested without Nipype); ``xaibids.interfaces`` and
``xaibids.workflows`` only wrap and wire them.
"""
