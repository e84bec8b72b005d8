"""Nipype interfaces: thin wrappers that call the plain functions of ``xaibids.features``."""
