"""${VAR} substitution."""

from __future__ import annotations

from rulesengine.errors import ProblemList
from rulesengine.spec.envsubst import substitute
from rulesengine.spec.yamlsrc import load_yaml


def run(text: str, env: dict[str, str]):
    loaded = load_yaml(text, "f.yaml")
    problems = ProblemList("f.yaml", loaded.problems.positions, loaded.problems.key_positions)
    secret: set = set()
    data = substitute(loaded.data, env, problems, loaded.plain, secret)
    return data, [p.render() for p in problems.problems], secret


def test_values_defaults_and_escapes():
    data, errors, secret = run(
        'a: "${A}"\nb: ${B:-fallback}\nc: x-${A}-y\nd: $${A}\ne: ${E:-}\n', {"A": "v"}
    )
    assert data == {"a": "v", "b": "fallback", "c": "x-v-y", "d": "${A}", "e": ""}
    assert errors == []
    assert secret == {("a",), ("c",)}


def test_missing_variable_names_it_at_its_position():
    _, errors, _ = run("sources:\n  s:\n    path: ${DATA_DIR}/x.parquet\n", {})
    assert errors == [
        "f.yaml:3:11: sources.s.path: environment variable 'DATA_DIR' is not set "
        "(set it, or give a default: ${DATA_DIR:-value})"
    ]


def test_whole_plain_value_is_typed_quoted_stays_string():
    data, _, _ = run('n: ${N:-500}\nq: "${N:-500}"\nf: ${F}\nb: ${B:-true}\n', {"F": "0.5"})
    assert data == {"n": 500, "q": "500", "f": 0.5, "b": True}


def test_keys_are_not_substituted():
    data, _, _ = run("${A}: 1\n", {"A": "x"})
    assert data == {"${A}": 1}


def test_bad_reference_syntax():
    _, errors, _ = run("a: ${1X}\n", {})
    assert errors == [
        "f.yaml:1:4: a: invalid variable reference '${1X}': write ${NAME} or ${NAME:-default}"
    ]


def test_unquoted_reference_in_flow_collection_gets_a_hint():
    loaded = load_yaml("receivers:\n  a: [${URL}]\n", "f.yaml")
    (problem,) = loaded.problems.problems
    assert problem.line == 2
    assert 'quote a value holding ${VAR}: "${VAR}"' in problem.message


def test_default_applies_to_empty_variables_like_the_shell():
    data, _, _ = run("a: ${A:-d}\nb: ${A}\n", {"A": ""})
    assert data == {"a": "d", "b": ""}


def test_engine_templates_keep_their_fields(tmp_path):
    from rulesengine.spec.loader import load

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.yaml").write_text(
        "version: 1\nmodel: m\nsources: {s: {path: x.parquet}}\n"
    )
    (tmp_path / "engine.yaml").write_text(
        'version: 1\ntemplates: {title: "${severity} $model"}\n'
        'receivers:\n  r: {urls: ["json://127.0.0.1:1/x"], body: "${value}"}\n'
    )
    config = load([tmp_path / "engine.yaml"], {})
    assert config.engine.templates.title == "${severity} $model"
    assert config.engine.receivers["r"].body == "${value}"
    assert [m.model for m in config.models] == ["m"]  # engine.yaml alone finds its models


def test_no_part_of_a_substituted_url_shows_in_any_problem(tmp_path):
    """The loader knows the whole URL from the environment as a secret; Apprise's
    messages quote a part of it (a token), and ours must not."""
    from rulesengine.spec.loader import load_report

    token = "Fk3partOFurlSECRET"
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.yaml").write_text(
        "version: 1\nmodel: m\nsources: {s: {path: x.parquet}}\n"
    )
    (tmp_path / "engine.yaml").write_text(
        'version: 1\nreceivers:\n  a: ["${FLOCK_URL}"]\n  b: ["${SLACK_URL}"]\n'
        "routes:\n  - {receivers: [a, b]}\n"
    )
    env = {"FLOCK_URL": f"flock://{token}!!/", "SLACK_URL": f"slack://T0/{token}/#c"}
    report = load_report([tmp_path], env)
    rendered = [p.render() for p in report.problems]
    flock, slack = rendered
    assert "receivers.a[0]: not a valid Apprise URL for scheme 'flock': flock://***/ " in flock
    assert (
        "receivers.b[0]: not a valid Apprise URL for scheme 'slack': slack://***/***/#***" in slack
    )
    assert not [r for r in rendered if token[:6] in r or token[-6:] in r]
