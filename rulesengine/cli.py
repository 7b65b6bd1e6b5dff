"""The ``rulesengine`` command line. Commands parse options, make one library call,
render, and return an exit code; everything they do is reachable from Python."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeVar

import click

from rulesengine import __version__
from rulesengine.runner import FAIL_ON

if TYPE_CHECKING:  # commands import what they use when they run, for a quick start
    from rulesengine.alerting.store import Store
    from rulesengine.spec.model import Config

F = TypeVar("F", bound=Callable[..., object])

PATHS = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True, file_okay=True)
)

TEXT_OR_JSON = ("text", "json")
VALIDATE_FORMATS = (*TEXT_OR_JSON, "github")


def _format_option(choices: tuple[str, ...], help_text: str | None = None) -> Callable[[F], F]:
    return click.option(
        "--format",
        "fmt",
        type=click.Choice(choices),
        default="text",
        show_default=True,
        help=help_text,
    )


class _Group(click.Group):
    """Turns our errors into a message and exit code in one place; never a traceback
    for bad input (set RULESENGINE_DEBUG=1 to see one for an internal error)."""

    def invoke(self, ctx: click.Context) -> object:
        from rulesengine.errors import RulesEngineError

        try:
            return super().invoke(ctx)
        except RulesEngineError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            sys.exit(130)
        except BaseException as exc:  # Polars' PanicException is a BaseException
            if isinstance(exc, GeneratorExit):
                raise
            if os.environ.get("RULESENGINE_DEBUG"):
                raise
            from rulesengine.masking import mask_text

            click.echo(
                f"internal error: {type(exc).__name__}: {mask_text(str(exc))}\n"
                "This is a bug in rulesengine; please report it "
                "(RULESENGINE_DEBUG=1 shows the traceback).",
                err=True,
            )
            sys.exit(70)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rulesengine")
def main() -> None:
    """Declarative monitoring rules for ML models in production."""
    # A Polars panic is reported as one line of ours; Rust's backtrace would only
    # add noise (RULESENGINE_DEBUG=1 keeps whatever the environment asked for).
    if not os.environ.get("RULESENGINE_DEBUG"):
        os.environ["RUST_BACKTRACE"] = "0"


@main.command()
@PATHS
@_format_option(
    VALIDATE_FORMATS, "text for people, json for scripts, github for workflow annotations."
)
@click.option(
    "--check-sources",
    is_flag=True,
    help="Also read each source's schema (metadata or first lines only) and check "
    "that the columns the spec uses exist with fitting dtypes.",
)
def validate(paths: tuple[str, ...], fmt: str, check_sources: bool) -> None:
    """Check config files or directories without running anything.

    Exit code 0 if valid, 1 if not.
    """
    from rulesengine.spec.validate import render
    from rulesengine.spec.validate import validate as run

    report = run(paths, check_sources=check_sources)
    click.echo(render(report, fmt))
    sys.exit(0 if report.ok else 1)


def _logging() -> None:
    import logging

    from rulesengine.masking import install_secret_filter

    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="rulesengine: %(levelname)s: %(message)s"
    )
    install_secret_filter()


def _parse_at(value: str | None) -> datetime:
    if not value or value == "now":
        return datetime.now(UTC)
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"'{value}' is not an ISO-8601 time, e.g. 2026-11-27T15:00:00Z", param_hint="--at"
        ) from None
    ts = ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
    if not 1970 <= ts.year <= 9999 - 1:  # windows reach back up to 10 years from --at
        raise click.BadParameter(
            f"'{value}' is outside the years 1970 to 9998 that the engine evaluates",
            param_hint="--at",
        )
    return ts


AT = click.option(
    "--at",
    "at",
    metavar="TIME",
    help="Evaluate as of this ISO-8601 time (UTC if no zone). Default: now.",
)


@main.command()
@PATHS
@AT
@_format_option(TEXT_OR_JSON, "text: a table, worst first; json: the Results document.")
@click.option(
    "--fail-on",
    type=click.Choice(list(FAIL_ON)),
    default="critical",
    show_default=True,
    help="Exit 1 when a result is at or above this status.",
)
@click.option(
    "--notify/--no-notify",
    default=False,
    show_default=True,
    help="Track alert states and deliver notifications through the engine's receivers.",
)
@click.option(
    "--cache/--no-cache",
    default=True,
    show_default=True,
    help="Answer windows from partial states cached beside the state file, scanning only "
    "new or changed files; --no-cache scans every window in one pass and touches no cache.",
)
def run(
    paths: tuple[str, ...], at: str | None, fmt: str, fail_on: str, notify: bool, cache: bool
) -> None:
    """Evaluate every monitor once, as of --at.

    With --notify, also track alert states in the state database and deliver
    notifications (retrying what earlier runs left in the outbox first).

    Exit codes: 0 nothing at or above --fail-on, 1 violations, 3 invalid config,
    4 a data or evaluation error (a result with status error), 5 the state
    database is corrupt, unreadable or from a newer rulesengine (with --notify;
    the results are still printed, then the error, which names the file and
    what to do).
    """
    from rulesengine.engine.results import to_json, to_text
    from rulesengine.runner import exit_code, run_once
    from rulesengine.spec.loader import load

    _logging()
    when = _parse_at(at)
    outcome = run_once(load(paths), when, notify=notify, cache=cache)
    if notify and outcome.store_error is None:
        click.echo(outcome.delivery_summary(), err=True)
    for m in outcome.models:
        for w in m.warnings:
            click.echo(f"warning: {m.model}: {w}", err=True)
    click.echo(to_json(outcome.models) if fmt == "json" else to_text(outcome.models))
    if outcome.store_error is not None:
        # after the results, so that scripts reading stdout still get them
        click.echo(f"error: {outcome.store_error}", err=True)
    sys.exit(exit_code(outcome, fail_on))


def _max_ticks_option(help_text: str) -> Callable[[F], F]:
    """``--max-ticks``: the bound on replayed ticks (backfill, diff --replay)."""
    return click.option(
        "--max-ticks",
        type=click.IntRange(min=1),
        default=100_000,
        show_default=True,
        help=help_text,
    )


def _check_listen(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    from rulesengine.daemon.http import ListenError, parse_listen

    if value is not None:
        try:
            parse_listen(value)
        except ListenError as exc:
            raise click.BadParameter(str(exc).removeprefix("--listen ")) from exc
    return value


@main.command()
@PATHS
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="text: one line per event; json: one JSON object per line (ts, level, msg, fields).",
)
@click.option(
    "--listen",
    metavar="HOST:PORT",
    callback=_check_listen,
    help="Serve /metrics, /healthz, /readyz and /api here. Default: server.listen "
    "in engine.yaml, else 127.0.0.1:9108 (loopback only).",
)
def daemon(paths: tuple[str, ...], log_format: str, listen: str | None) -> None:
    """Evaluate each model on its cadence (evaluation.every or cron) until stopped.

    Each tick is evaluated, tracked and notified as `run --notify --at TICK` would,
    and recorded with the model's watermark, so a restart resumes where it stopped.
    Models are evaluated in parallel. SIGHUP (or a changed config file) reloads the
    config, keeping the running one if the new one is invalid. SIGTERM or SIGINT
    lets the ticks in flight finish (at most 10 s), then exits 0.

    Exit codes: 0 stopped by a signal, 1 cannot listen on the address, 3 invalid
    config, 5 the state file cannot be used, 6 another daemon already runs on the
    same state file.
    """
    from rulesengine.daemon.logs import configure
    from rulesengine.daemon.loop import serve
    from rulesengine.spec.loader import load

    _logging()
    configure(log_format)
    sys.exit(serve(load(paths), paths, listen))


@main.command()
@PATHS
@AT
def plan(paths: tuple[str, ...], at: str | None) -> None:
    """Show the compiled plan: monitors -> aggregates -> Polars plan."""
    from rulesengine.engine.explain import explain
    from rulesengine.spec.loader import load

    click.echo(explain(load(paths), _parse_at(at)))


def _store_of(config_path: str) -> Store:
    """The state store that the config at ``config_path`` names."""
    from rulesengine.alerting.store import Store
    from rulesengine.spec.loader import load

    return Store(load([config_path]).engine.state)


CONFIG = click.option(
    "-c",
    "--config",
    "config_path",
    default=".",
    show_default=True,
    type=click.Path(exists=True),
    help="The config directory (with engine.yaml) or a model file.",
)


@main.command()
@CONFIG
@_format_option(TEXT_OR_JSON)
def alerts(config_path: str, fmt: str) -> None:
    """List current alert states and the notifications still in the outbox.

    Exit code 5 if the state database is corrupt, unreadable or from a newer
    rulesengine (the message names the file and what to do).
    """
    import json

    from rulesengine.alerting.admin import alert_listing, listing_text

    store = _store_of(config_path)
    with store:
        listing = alert_listing(store, datetime.now(UTC))
    click.echo(json.dumps(listing, indent=2) if fmt == "json" else listing_text(listing))


@main.group()
def silence() -> None:
    """Mute alerts whose labels match, for a while.

    Exit code 5 if the state database cannot be used (as for ``alerts``).
    """


@silence.command("add")
@CONFIG
@click.option(
    "--match",
    "matchers",
    multiple=True,
    required=True,
    metavar="LABEL=VALUE",
    help="A label matcher: label=value, label!=value, label=~regex or label!~regex. "
    "Repeat for several; all must match.",
)
@click.option(
    "--for", "duration", required=True, metavar="DURATION", help="How long, e.g. 2h or 1d."
)
@click.option("--comment", required=True, help="Why (shown in listings).")
@click.option("--author", default=None, help="Who. Default: $USER, else the login name.")
def silence_add(
    config_path: str, matchers: tuple[str, ...], duration: str, comment: str, author: str | None
) -> None:
    """Add a silence; prints its id."""
    from rulesengine.alerting.admin import add_silence, default_author
    from rulesengine.alerting.routing import parse_matcher
    from rulesengine.durations import parse_duration

    try:  # checked before the store opens: a typo is a usage error (exit 2)
        span = parse_duration(duration)
        for m in matchers:
            parse_matcher(m)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    store = _store_of(config_path)
    with store:
        sid = add_silence(
            store,
            list(matchers),
            span,
            comment,
            author or default_author(),
            datetime.now(UTC),
        )
    click.echo(sid)


@silence.command("list")
@CONFIG
@_format_option(TEXT_OR_JSON)
def silence_list(config_path: str, fmt: str) -> None:
    """List silences, active first."""
    import json

    from rulesengine.alerting.admin import silence_listing, silence_text

    store = _store_of(config_path)
    with store:
        rows = silence_listing(store, datetime.now(UTC))
    click.echo(json.dumps(rows, indent=2) if fmt == "json" else silence_text(rows))


@silence.command("expire")
@CONFIG
@click.argument("silence_id")
def silence_expire(config_path: str, silence_id: str) -> None:
    """End a silence now."""
    from rulesengine.alerting.admin import expire_silence

    store = _store_of(config_path)
    with store:
        ok = expire_silence(store, silence_id, datetime.now(UTC))
    if not ok:
        raise click.ClickException(f"no active silence with id '{silence_id}'")
    click.echo(f"expired {silence_id}")


def _parse_since(value: str, until: datetime) -> datetime:
    """``7d`` (a duration back from --until) or an ISO-8601 time."""
    from rulesengine.durations import duration_problem, parse_duration

    if duration_problem(value) is None:
        return until - parse_duration(value)
    try:
        return _parse_at(value)
    except click.BadParameter:
        raise click.BadParameter(
            f"'{value}' is neither a duration (e.g. 7d, 12h) nor an ISO-8601 time",
            param_hint="--since",
        ) from None


@main.command()
@PATHS
@click.option("--model", required=True, help="The model whose history to show.")
@click.option("--monitor", default=None, help="Only this monitor. Default: all of them.")
@click.option(
    "--since",
    default="7d",
    show_default=True,
    metavar="DURATION|TIME",
    help="From this long before --until (e.g. 7d, 12h), or from an ISO-8601 time.",
)
@click.option("--until", metavar="TIME", help="Up to this ISO-8601 time (inclusive). Default: now.")
@_format_option(
    ("text", "json", "csv"),
    "text: a table, oldest first; json: {model, rows}; csv: a header and one line per row.",
)
def history(
    paths: tuple[str, ...],
    model: str,
    monitor: str | None,
    since: str,
    until: str | None,
    fmt: str,
) -> None:
    """Show past values and statuses of a model's monitors, oldest first.

    History is written by `run --notify` (and the daemon) into the state
    database that the config names. Exit code 1 if there is no state file yet
    or the model or monitor is unknown, 5 if the state database cannot be used.
    """
    from rulesengine.history.query import history_of
    from rulesengine.history.render import to_csv, to_json, to_text
    from rulesengine.spec.loader import load

    try:
        end = _parse_at(until)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint="--until") from None
    start = _parse_since(since, end)
    rows = history_of(load(paths), model, monitor=monitor, since=start, until=end)
    if fmt == "json":
        click.echo(to_json(model, rows))
    else:
        click.echo(to_csv(rows) if fmt == "csv" else to_text(model, rows))


def _backfill_range(start: str, end: str | None) -> tuple[datetime, datetime]:
    """--to (an ISO-8601 time, default now) and --from (a duration back from --to,
    or an ISO-8601 time); --from must come first."""
    try:
        until = _parse_at(end)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint="--to") from None
    try:
        since = _parse_since(start, until)
    except click.BadParameter as exc:
        raise click.BadParameter(exc.message, param_hint="--from") from None
    if since >= until:
        raise click.BadParameter(
            f"{since:%Y-%m-%dT%H:%M:%SZ} is not before --to {until:%Y-%m-%dT%H:%M:%SZ}",
            param_hint="--from",
        )
    return since, until


@main.command()
@PATHS
@click.option(
    "--from",
    "start",
    required=True,
    metavar="DURATION|TIME",
    help="Replay ticks after this ISO-8601 time (exclusive), or this long before --to (7d).",
)
@click.option(
    "--to", "end", metavar="TIME", help="Up to this ISO-8601 time (inclusive). Default: now."
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="M",
    help="Only this model (repeat for several). Default: every model.",
)
@_max_ticks_option("Refuse a range holding more ticks than this (all models together).")
@_format_option(TEXT_OR_JSON, "text: a table per model, worst first; json: the backfill document.")
def backfill(
    paths: tuple[str, ...],
    start: str,
    end: str | None,
    models: tuple[str, ...],
    max_ticks: int,
    fmt: str,
) -> None:
    """Replay each model's ticks in (--from, --to] over past logs on a scratch store.

    The real alert state machine and grouping run with the tick as the clock;
    nothing is delivered and the config's state file is never opened. Prints,
    per monitor, the ticks it was firing, for how long, the first and last
    firing tick and the notifications that would have been queued. A progress
    bar goes to stderr when it is a terminal.

    Exit codes: 0 done, 2 bad options (times, --from not before --to, an unknown
    model, more ticks than --max-ticks), 3 invalid config.
    """
    from rulesengine.daemon.backfill import backfill as replay
    from rulesengine.daemon.backfill import plan_size, to_json, to_text
    from rulesengine.spec.loader import load

    _logging()
    since, until = _backfill_range(start, end)
    config = load(paths)
    total = plan_size(config, since, until, models=models, max_ticks=max_ticks)
    if not sys.stderr.isatty():  # quiet: nothing on stderr
        report = replay(config, since, until, models=models, max_ticks=max_ticks)
    else:
        with click.progressbar(
            length=total,
            label="backfill",
            file=sys.stderr,
            show_pos=True,
            show_eta=True,
            item_show_func=lambda item: item,
        ) as bar:

            def progress(done: int, total: int, model: str, tick: datetime) -> None:
                bar.update(1, f"{total - done} left, {model} {tick:%Y-%m-%dT%H:%M}Z")

            report = replay(
                config, since, until, models=models, max_ticks=max_ticks, progress=progress
            )
    click.echo(to_json(report) if fmt == "json" else to_text(report))


@main.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
def test_command(files: tuple[str, ...]) -> None:
    """Run rule unit tests: fixture rows, evaluation times, expected results,
    alert states and notifications (docs/testing.md).

    Each evaluation time runs the real evaluation and alert tracker on a scratch
    state file; nothing is delivered. A failure prints expected against actual
    at the test file's line.

    Exit codes: 0 all passed, 1 a test failed, 2 invalid test file, 3 invalid config.
    """
    from rulesengine.ruletest.format import read_test_file
    from rulesengine.ruletest.report import to_text
    from rulesengine.ruletest.runner import check_names, load_config, run_test

    _logging()
    loaded = []
    for f in files:  # every file and its config checked before anything runs
        tf = read_test_file(f)
        config = load_config(tf)
        loaded.append((tf, config, check_names(tf, config)))
    outcomes = [run_test(tf, t, c, models[t.index]) for tf, c, models in loaded for t in tf.tests]
    click.echo(to_text(outcomes))
    sys.exit(0 if all(o.passed for o in outcomes) else 1)


@main.command("diff")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option(
    "--git",
    "git",
    metavar="REV|A..B",
    help="One PATH at two revisions: REV against the working tree, or A against B.",
)
@click.option(
    "--replay",
    "replay_range",
    metavar="FROM..TO",
    help="Backfill both configs over (FROM, TO] and compare firings and notifications.",
)
@_max_ticks_option("With --replay: refuse a range holding more ticks than this (per side).")
@_format_option(("text", "markdown", "json"), "markdown: a pull-request comment.")
def diff(
    paths: tuple[str, ...], git: str | None, replay_range: str | None, max_ticks: int, fmt: str
) -> None:
    """What a spec change does: BASE HEAD (two config paths), or PATH --git REV.

    Lists models and monitors added, removed and changed, thresholds loosened or
    tightened, receivers (URLs masked) and routes changed, and which alerts
    would reach other receivers. With --replay FROM..TO, both configs are
    backfilled over the same past logs and their firings and notifications put
    side by side (progress on stderr when it is a terminal).

    Exit codes: 0 done, 2 bad arguments (revisions, paths, range), 3 an invalid
    config on either side.
    """
    from rulesengine.review.diff import diff_configs, replay_size
    from rulesengine.review.gitrev import sides
    from rulesengine.review.render import to_json, to_markdown, to_text

    _logging()
    span = None
    if replay_range is not None:
        start, sep, end = replay_range.partition("..")
        if not sep or not start:
            raise click.BadParameter(f"'{replay_range}': write FROM..TO", param_hint="--replay")
        try:
            span = _backfill_range(start, end or None)
        except click.BadParameter as exc:
            raise click.BadParameter(exc.message, param_hint="--replay") from None
    with sides(paths, git, os.environ) as (base, head):
        found = diff_configs(base, head)
        if span is not None:
            total = replay_size(base.config, head.config, *span, max_ticks)
            found.replay = _replay_with_bar(base.config, head.config, span, total, max_ticks)
    render = {"json": to_json, "markdown": to_markdown}.get(fmt, to_text)
    click.echo(render(found))


def _replay_with_bar(
    base: Config, head: Config, span: tuple[datetime, datetime], total: int, max_ticks: int
) -> dict[str, object]:
    """Both replays, with click's progress bar on stderr if it is a terminal."""
    from rulesengine.review.diff import replay

    if not sys.stderr.isatty():
        return replay(base, head, *span, max_ticks=max_ticks)
    with click.progressbar(
        length=total,
        label="replay",
        file=sys.stderr,
        show_pos=True,
        show_eta=True,
        item_show_func=lambda item: item,
    ) as bar:

        def progress(done: int, total: int, side: str, model: str, tick: datetime) -> None:
            bar.update(1, f"{side} {model} {tick:%Y-%m-%dT%H:%M}Z")

        return replay(base, head, *span, max_ticks=max_ticks, progress=progress)


@main.command()
@click.option(
    "--from-reference",
    "reference",
    required=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="A local parquet, CSV or NDJSON file of typical rows (e.g. training data).",
)
@click.option("--model", required=True, metavar="NAME", help="The model's name.")
@click.option("--timestamp", metavar="COL", help="The event-time column of the live logs.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="Write the spec here (never over an existing file). Default: stdout.",
)
def init(reference: str, model: str, timestamp: str | None, out: str | None) -> None:
    """Write a starter model spec from a reference dataset.

    A schema check, null-rate and range checks with stated margins, allowed
    values for text columns with few values, and drift on every feature, each
    number with a comment saying where it came from. The spec is validated
    before it is written; evaluated against the reference itself it fires
    nothing. Exit codes: 0 written, 2 bad options, 4 unreadable reference.
    """
    from pathlib import Path

    from rulesengine.review.init import engine_note, reference_path, starter_spec, write

    target = Path(out) if out else None
    text = starter_spec(Path(reference), model, timestamp, reference_path(Path(reference), target))
    if target is None:
        click.echo(text, nl=False)
        return
    write(text, target)
    click.echo(f"wrote {target}", err=True)
    note = engine_note(target)
    if note:
        click.echo(note, err=True)


@main.command()
@PATHS
@AT
@click.option(
    "--since",
    default="7d",
    show_default=True,
    metavar="DURATION|TIME",
    help="History from this long before --at (e.g. 7d, 12h), or from an ISO-8601 time.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "json"]),
    default="html",
    show_default=True,
    help="html: one self-contained page; json: the same content as data.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False), metavar="PATH", help="Write here. Default: stdout."
)
def report(paths: tuple[str, ...], at: str | None, since: str, fmt: str, out: str | None) -> None:
    """Write a report: per model, status, drift charts, trends and alert timeline.

    The results are evaluated as of --at like `run`; trends and the timeline come
    from the state file's history (read only, never created). HTML needs the
    report extra (matplotlib). Exit codes: 0 written, 2 bad options or matplotlib
    missing, 3 invalid config.
    """
    import json
    from pathlib import Path

    from rulesengine.report.build import build_report
    from rulesengine.spec.loader import load

    end = _parse_at(at)
    start = _parse_since(since, end)
    if fmt == "html":
        from rulesengine.report.charts import require

        require()
    config = load(paths)
    doc = build_report(config, end, start)
    if fmt == "json":
        text = json.dumps(doc, indent=2) + "\n"
    else:
        from rulesengine.report.html import to_html

        text = to_html(doc)
    if out is None:
        click.echo(text, nl=False)
        return
    Path(out).write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


@main.command()
@click.argument("kind", type=click.Choice(["model", "engine"]), default="model")
def schema(kind: str) -> None:
    """Print the JSON Schema of model files (default) or engine.yaml."""
    from rulesengine.spec.schema import schema_text

    click.echo(schema_text(kind), nl=False)


@main.command()
@click.argument("model_file", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--source",
    metavar="S",
    help="The source whose rows a request becomes. Default: the one source the "
    "model's contract checks cover.",
)
@click.option(
    "--exclude",
    multiple=True,
    metavar="COLUMN",
    help="A column a request does not carry (the model's output, e.g. its score); "
    "its rules are left out. Repeatable.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json-schema"]),
    default="json-schema",
    show_default=True,
    help="json-schema: a JSON Schema (draft 2020-12) for one request.",
)
def contract(model_file: str, source: str | None, exclude: tuple[str, ...], fmt: str) -> None:
    """Print the input contract of one request, derived from a model's spec.

    The schema check's columns and dtypes, allowed values, ranges and not-null,
    each kept when one bad request alone would trip the check's threshold. In
    Python, rulesengine.contract.validator(MODEL_FILE) checks requests against
    the same rules. Exit codes: 0 printed, 2 bad options (an unknown --source,
    no source to choose, nothing to derive), 3 invalid config.
    """
    from rulesengine.contract import json_schema_text, load_contract

    click.echo(json_schema_text(load_contract(model_file, source, exclude)), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
