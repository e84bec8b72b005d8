"""Outputs: the BIDS-derivatives dataset (description, ignore file, logs) and, later, reports."""
