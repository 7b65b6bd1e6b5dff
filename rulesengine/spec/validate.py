"""``rulesengine validate``: load configs, optionally check them against the data,
and render the problems as text, JSON or GitHub annotations."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from rulesengine.errors import Problem, format_path
from rulesengine.spec.loader import LoadReport, group_by_root, load_report


def validate(
    paths: Sequence[str | Path],
    *,
    check_sources: bool = False,
    env: Mapping[str, str] | None = None,
) -> LoadReport:
    """Load everything under ``paths``; with ``check_sources`` also read each source's
    schema (no data) and check the columns the spec uses.

    Paths of several config directories (a commit touching two of them) are
    grouped by the engine file that governs each and every group is validated
    against its own; the problems of all groups come back together. The merged
    report's ``config`` is the first group's when every group loaded (only
    ``ok`` is read from it), else None."""
    reports = [_validate_one(group, check_sources, env) for group in group_by_root(paths)]
    if len(reports) == 1:
        return reports[0]
    problems = sorted((p for r in reports for p in r.problems), key=Problem.sort_key)
    files = list(dict.fromkeys(f for r in reports for f in r.files))
    loaded = all(r.config is not None for r in reports)
    return LoadReport(reports[0].config if loaded else None, problems, files)


def _validate_one(
    paths: Sequence[str | Path], check_sources: bool, env: Mapping[str, str] | None
) -> LoadReport:
    report = load_report(paths, env)
    if check_sources and report.config is not None:
        from rulesengine.spec.sourcecheck import check_sources as run_check

        problems = run_check(report.config)
        if any(p.severity == "error" for p in problems):
            return LoadReport(None, sorted(problems, key=Problem.sort_key), report.files)
        report.problems.extend(problems)
    return report


def _escape_github(text: str, *, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def render(report: LoadReport, fmt: str) -> str:
    """Every message goes through mask_text, whatever the format: a URL quoted in a
    problem (from ${ENV} or from Apprise) shows only its scheme, host and port."""
    from rulesengine.masking import mask_text

    report = dataclasses.replace(
        report,
        problems=[dataclasses.replace(p, message=mask_text(p.message)) for p in report.problems],
    )
    errors = report.errors
    warnings = len(report.problems) - len(errors)
    if fmt == "json":
        return json.dumps(
            {
                "valid": report.ok and not errors,
                "files": report.files,
                "problems": [p.as_dict() for p in report.problems],
            },
            indent=2,
        )
    lines = []
    for p in report.problems:
        if fmt == "github":
            level = "error" if p.severity == "error" else "warning"
            title = format_path(p.path) or "config"
            lines.append(
                f"::{level} file={_escape_github(p.file, prop=True)},line={p.line},"
                f"col={p.col},title={_escape_github(title, prop=True)}::"
                f"{_escape_github(p.message)}"
            )
        else:
            prefix = "" if p.severity == "error" else "warning: "
            lines.append(prefix + p.render())
    n_files = max(len(report.files), len({p.file for p in report.problems}))
    if fmt == "text":
        if errors:
            lines.append(
                f"{len(errors)} error{'s' if len(errors) != 1 else ''} in "
                f"{len({p.file for p in errors})} of {n_files} "
                f"file{'s' if n_files != 1 else ''}"
            )
        else:
            extra = f" ({warnings} warning{'s' if warnings != 1 else ''})" if warnings else ""
            lines.append(f"ok: {n_files} file{'s' if n_files != 1 else ''} valid{extra}")
    return "\n".join(lines)
