"""Unit tests of the drift subpackage's small parts: the column roles (their keys
are the binding names ``rulesengine plan`` shows), the profile cache's slot, and
the per-column choices kept beside a profile."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from rulesengine.monitors.drift import profile_cache
from rulesengine.monitors.drift.choices import Reference, decide
from rulesengine.monitors.drift.columns import Role, Use
from rulesengine.monitors.drift.profiles import Profile, categorical_profile, numeric_profile
from rulesengine.spec.model import ColumnOverride, DriftSpec, ReferenceSpec


def test_role_keys_are_the_binding_names_the_plan_shows():
    keys = {use: Role(use, "amount").key for use in Use}
    assert keys == {
        Use.NUMBERS: "n:amount",
        Use.CATEGORIES: "c:amount",
        Use.EMPTY: "e:amount",
        Use.NOT_NUMBERS: "u:amount",
        Use.SAMPLE: "s:amount",
        Use.CELLS: "h:amount",
        Use.TAILS: "t:amount",
    }


@pytest.mark.parametrize("use", list(Use))
def test_role_key_parses_back(use):
    role = Role(use, "a:b")  # a column name may hold the separator
    assert Role.parse(role.key) == role


@pytest.mark.parametrize("key", ["main", "__segments", "x:amount", ""])
def test_names_that_are_not_column_roles_parse_to_none(key):
    assert Role.parse(key) is None


def _profile(rows: int = 3) -> Profile:
    x = numeric_profile("x", np.array([1.0, 2.0, 3.0]), 1, 10)
    c = categorical_profile("c", {"a": 2, "b": 1, None: 1})
    return Profile(rows, {"x": x, "c": c})


def _slot(tmp_path: Path, shape: dict) -> profile_cache.Slot:
    data = tmp_path / "ref.csv"
    if not data.exists():
        data.write_text("x\n1\n")
    slot = profile_cache.slot(tmp_path / "profiles", [str(data)], shape)
    assert slot is not None
    return slot


def test_a_slot_keeps_a_profile_and_gives_it_back_for_the_same_columns(tmp_path):
    slot = _slot(tmp_path, {"bins": 10})
    assert slot.load({"x", "c"}) is None  # nothing kept yet
    slot.save(_profile())
    back = slot.load({"x", "c"})
    assert back is not None and back.rows == 3
    assert back.columns["c"].categories == ["a", "b"]
    np.testing.assert_array_equal(back.columns["x"].sample, [1.0, 2.0, 3.0])
    assert slot.load({"x"}) is None  # other columns: profiled again


def test_a_profile_without_rows_is_not_kept(tmp_path):
    slot = _slot(tmp_path, {"bins": 10})
    slot.save(_profile(rows=0))
    assert not slot.path.exists()


def test_the_slot_depends_on_the_shape_not_its_order(tmp_path):
    one = _slot(tmp_path, {"bins": 10, "filter": None})
    assert _slot(tmp_path, {"filter": None, "bins": 10}) == one
    assert _slot(tmp_path, {"bins": 20, "filter": None}) != one


def test_a_changed_reference_file_gets_another_slot(tmp_path):
    one = _slot(tmp_path, {"bins": 10})
    data = tmp_path / "ref.csv"
    st = data.stat()
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _slot(tmp_path, {"bins": 10}) != one


def test_references_without_local_files_get_no_slot(tmp_path):
    assert profile_cache.slot(tmp_path, None, {"bins": 10}) is None


def _spec(**kw) -> DriftSpec:
    common = {"name": "d", "kind": "drift", "type": "drift", "source": "s"}
    frame = {"window": timedelta(hours=1), "delay": timedelta(0), "segment_by": ()}
    reference = ReferenceSpec(source="r")
    return DriftSpec(**common, **frame, min_rows=1, reference=reference, **kw)


def test_choices_are_made_once_and_kept_beside_the_profile():
    profile = _profile()
    ref = Reference(_spec(method="psi"), profile)
    assert ref.choices is ref.choices
    assert not hasattr(profile, "decided")
    x = ref.choices.columns["x"]
    # three distinct values: compared as categories, labelled as Polars prints numbers
    assert (x.profile.kind, x.profile.categories, x.method, x.threshold) == (
        "categorical",
        ["1.0", "2.0", "3.0"],
        "psi",
        0.1,
    )


def test_a_method_that_does_not_fit_the_column_is_an_error_of_that_column():
    choices = decide(_spec(method="ks"), _profile())
    assert choices.errors == {"c": "method 'ks' needs a numeric column; 'c' is categorical"}
    assert list(choices.columns) == ["x"]


def test_overrides_decide_kind_and_threshold():
    m = _spec(method="ks", overrides={"x": ColumnOverride(type="numeric", threshold=0.01)})
    x = decide(m, _profile()).columns["x"]
    assert (x.profile.kind, x.method, x.threshold) == ("numeric", "ks", 0.01)


def test_a_column_without_reference_values_is_empty():
    profile = Profile(2, {"x": numeric_profile("x", np.empty(0), 2, 10)})
    choices = decide(_spec(), profile)
    assert choices.empty == {"x": "the reference has no non-null values"}
    assert not choices.columns and not choices.errors
