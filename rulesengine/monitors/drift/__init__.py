"""Drift: the monitor (monitor.py), the reference profiles it compares against
(profiles.py, cached on disk), the statistics (methods.py, over counts, cells and
samples) and the method vocabulary (vocabulary.py, which the spec validator reads)."""
