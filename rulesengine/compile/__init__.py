"""Spec → plan: one lazy query per (frame, segmentation) with deduplicated
aggregates, run together with ``pl.collect_all`` so each file is scanned once."""

from rulesengine.compile.plan import Plan, Query, compile_model

__all__ = ["Plan", "Query", "compile_model"]
