"""Fixtures shared by the spec tests."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from rulesengine.spec import yamlsrc


@pytest.fixture
def values_built(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """``.n`` counts the values the YAML loader builds (each scalar, list and map, once
    per alias that repeats it): the loader's work, measured without a clock."""
    tally = SimpleNamespace(n=0)
    build = yamlsrc._Builder.build

    def counted(self: Any, node: Any, path: Any) -> Any:
        tally.n += 1
        return build(self, node, path)

    monkeypatch.setattr(yamlsrc._Builder, "build", counted)
    return tally
