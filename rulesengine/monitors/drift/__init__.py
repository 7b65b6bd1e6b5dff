"""Drift, one module per idea, in the order a run uses them:

- vocabulary.py: the method names and their kinds, defined once (the spec
  validator reads it; it imports nothing heavy);
- monitor.py: the ``drift`` monitor type, which ties the rest together;
- planning.py: which aggregates each column needs, over the reference and the window;
- columns.py: a column's Polars expressions and the roles its aggregates travel under;
- profiles.py: the reference reduced to a profile, plain data;
- profile_cache.py: profiles kept on disk between runs;
- choices.py: how each column is compared, decided once per profile;
- scoring.py: one result per column and the segment's drift_share;
- methods.py: the statistics, over counts, cells and samples.
"""
