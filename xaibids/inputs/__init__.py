"""BIDS input: validation, pybids queries and participant tables."""
