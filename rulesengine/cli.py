"""The ``rulesengine`` command line. Commands parse options, make one library call,
render, and return an exit code; everything they do is reachable from Python."""

from __future__ import annotations

import os
import sys

import click

from rulesengine import __version__

PATHS = click.argument(
    "paths", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=True, file_okay=True)
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
        except Exception as exc:
            if os.environ.get("RULESENGINE_DEBUG"):
                raise
            click.echo(
                f"internal error: {type(exc).__name__}: {exc}\n"
                "This is a bug in rulesengine; please report it "
                "(RULESENGINE_DEBUG=1 shows the traceback).",
                err=True,
            )
            sys.exit(70)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="rulesengine")
def main() -> None:
    """Declarative monitoring rules for ML models in production."""


@main.command()
@PATHS
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text for people, json for scripts, github for workflow annotations.",
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
    from rulesengine.validate import render
    from rulesengine.validate import validate as run

    report = run(paths, check_sources=check_sources)
    click.echo(render(report, fmt))
    sys.exit(0 if report.ok else 1)


@main.command()
@click.argument("kind", type=click.Choice(["model", "engine"]), default="model")
def schema(kind: str) -> None:
    """Print the JSON Schema of model files (default) or engine.yaml."""
    from rulesengine.spec.schema import schema_text

    click.echo(schema_text(kind), nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
