"""Loading, validating and typing monitor specs."""
