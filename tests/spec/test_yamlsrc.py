"""Safe YAML loading with positions."""

from __future__ import annotations

from types import SimpleNamespace

from rulesengine.spec.yamlsrc import MAX_NODES, load_yaml


def messages(text: str) -> list[str]:
    return [p.render() for p in load_yaml(text, "f.yaml").problems.problems]


def test_positions_of_keys_and_values():
    loaded = load_yaml("a:\n  b: [1, 2]\n  c: {d: x}\n", "f.yaml")
    pos, keys = loaded.problems.positions, loaded.problems.key_positions
    assert (pos[("a", "b")].line, pos[("a", "b")].col) == (2, 6)
    assert (pos[("a", "b", 1)].line, pos[("a", "b", 1)].col) == (2, 10)
    assert (keys[("a", "c", "d")].line, keys[("a", "c", "d")].col) == (3, 7)
    assert loaded.data == {"a": {"b": [1, 2], "c": {"d": "x"}}}


def test_python_tags_are_errors_never_objects():
    loaded = load_yaml("x: !!python/object/apply:os.system ['echo hacked']\n", "f.yaml")
    assert loaded.data == {"x": None}
    assert messages("x: !!python/object/apply:os.system ['echo hacked']\n") == [
        "f.yaml:1:4: x: tag '!!python/object/apply:os.system' is not allowed: specs hold only "
        "plain maps, lists, strings, numbers, booleans and null"
    ]


def test_other_non_json_tags_are_errors():
    assert "tag '!!binary'" in messages("x: !!binary aGVsbG8=\n")[0]
    assert "tag '!custom'" in messages("x: !custom 1\n")[0]
    assert "tag '!!set'" in messages("x: !!set {a, b}\n")[0]


def test_duplicate_keys_point_at_the_second():
    assert messages("a: 1\nb: 2\na: 3\n") == [
        "f.yaml:3:1: a: duplicate key 'a' (first defined at line 1)"
    ]


def test_yaml_12_booleans_and_dates_stay_strings():
    data = load_yaml("a: yes\nb: NO\nc: on\nd: 2024-01-01\ne: true\nf: False\n", "f").data
    assert data == {"a": "yes", "b": "NO", "c": "on", "d": "2024-01-01", "e": True, "f": False}


def test_keys_are_their_text():
    assert load_yaml("on: 1\n1: 2\nnull: 3\n", "f").data == {"on": 1, "1": 2, "null": 3}


def test_anchors_and_merge_keys():
    text = "base: &b {window: 1h, min_rows: 5}\nx: {<<: *b, min_rows: 9}\n"
    assert load_yaml(text, "f").data["x"] == {"window": "1h", "min_rows": 9}


def test_alias_bomb_is_a_clean_error_and_bounded_work(values_built: SimpleNamespace):
    """Nine levels of nine aliases expand to 9**9 values; the loader builds no more
    than MAX_NODES of them (and the few siblings left in the lists it is inside)."""
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        cur = chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    got = messages("\n".join(lines) + "\n")
    assert len(got) == 1 and "too many aliases" in got[0]
    assert MAX_NODES < values_built.n <= MAX_NODES + 9 * 10, values_built.n


def test_syntax_error_is_positioned():
    got = messages("a: [1, 2\nb: 3\n")
    assert len(got) == 1 and got[0].startswith("f.yaml:2:2: invalid YAML:")


def test_empty_and_multi_document_files():
    assert messages("") == ["f.yaml:1:1: the file is empty"]
    assert messages("# only a comment\n") == ["f.yaml:1:1: the file is empty"]
    assert "invalid YAML" in messages("a: 1\n---\nb: 2\n")[0]


def test_merge_override_keeps_position_of_the_explicit_value():
    loaded = load_yaml("b: &b {w: 1, m: 5}\nx:\n  <<: *b\n  m: 9\n", "f")
    assert loaded.data["x"] == {"w": 1, "m": 9}
    assert loaded.problems.positions[("x", "m")].line == 4
    assert loaded.problems.problems == []


def test_yaml_12_numbers():
    data = load_yaml("a: 1e-3\nb: 12:30\nc: 1_000\nd: 007\ne: 0o17\nf: 0x1F\ng: .inf\n", "f").data
    assert data == {
        "a": 0.001,
        "b": "12:30",
        "c": "1_000",
        "d": 7,
        "e": 15,
        "f": 31,
        "g": float("inf"),
    }


def test_a_written_key_wins_over_merged_ones_and_keeps_its_own_position():
    text = "base: &b {window: 1h, min_rows: {a: 1}}\nx:\n  <<: *b\n  min_rows: 9\n"
    loaded = load_yaml(text, "f")
    assert loaded.data["x"] == {"window": "1h", "min_rows": 9}
    pos = loaded.problems.positions
    assert (pos[("x", "min_rows")].line, pos[("x", "min_rows")].col) == (4, 13)
    assert ("x", "min_rows", "a") not in pos  # the merged value was never built
    assert (pos[("x", "window")].line, pos[("x", "window")].col) == (1, 19)


def test_a_written_key_still_counts_as_a_duplicate():
    got = messages("base: &b {a: 1}\nx:\n  <<: *b\n  a: 2\n  a: 3\n")
    assert got == ["f.yaml:5:3: x.a: duplicate key 'a' (first defined at line 4)"]
