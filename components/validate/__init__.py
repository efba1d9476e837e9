"""Validation of the clip manifest with a Great Expectations 1.x suite."""
