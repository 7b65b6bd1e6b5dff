"""Spec → results: sources (log files as LazyFrames), plan (one query per frame and
segmentation), evaluate (collect, score), explain (`rulesengine plan`), results
(the JSON document and the text table)."""
