"""``rulesengine test`` output: one line per test, and for each failed expectation
a diff of expected (``-``) against actual (``+``) at ``file:line``."""

from __future__ import annotations

from collections.abc import Sequence

from rulesengine.ruletest.runner import Failure, TestOutcome, when


def failure_text(f: Failure) -> list[str]:
    """The lines of one failure: where, then expected and actual."""
    at = f" at {when(f.at)}" if f.at is not None else ""
    out = [f"{f.file}:{f.line}: {f.test!r}{at}: {f.what}"]
    out += [f"  - expected: {line}" for line in f.expected]
    out += [f"  + actual:   {line}" for line in f.actual]
    return out


def to_text(outcomes: Sequence[TestOutcome]) -> str:
    """PASS/FAIL per test, the failures, and a summary line."""
    out: list[str] = []
    for o in outcomes:
        mark = "PASS" if o.passed else "FAIL"
        out.append(f"{mark} {o.file}:{o.line}: {o.name} ({o.times} evaluation time(s))")
        for f in o.failures:
            out += ["    " + line for line in failure_text(f)]
    failed = sum(1 for o in outcomes if not o.passed)
    out.append(f"{len(outcomes)} test(s): {len(outcomes) - failed} passed, {failed} failed")
    return "\n".join(out)
