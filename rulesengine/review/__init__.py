"""Specs under review: ``rulesengine diff`` (what a spec change does to monitors,
thresholds, receivers, routing and, replayed over past logs, to firings) and
``rulesengine init`` (a starter spec from a reference dataset)."""
