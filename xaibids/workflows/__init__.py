"""Nipype workflow builders. They only wire interfaces; the science is in ``xaibids.features``."""
