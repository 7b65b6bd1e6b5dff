"""Spec → results, one module per stage: sources (log files as LazyFrames, over
the files that files lists, ragged CSV rows found by csvrows, timestamps
normalised by timestamps), frames (windows, filters, label joins), plan (one
query per frame and segmentation, per phase), execute (collect), score (frames →
results), evaluate (the stages in order), explain (`rulesengine plan`), results
(the JSON document and the text table)."""
