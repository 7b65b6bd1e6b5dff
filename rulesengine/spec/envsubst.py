"""``${VAR}`` and ``${VAR:-default}`` substitution in string values.

Runs after YAML loading and before schema validation, so a substituted value is
validated like any other. ``$${`` writes a literal ``${``. When a whole plain
(unquoted) scalar is one reference, the result is typed as YAML would type it, so
``min_rows: ${MIN_ROWS:-500}`` gives the integer 500. As in the shell, the default
applies when the variable is unset or empty. Paths for which ``skip`` is true
(notification templates, whose ``${name}`` are template fields) are left alone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from rulesengine.errors import KeyPath, ProblemList

_REF = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}?")


def substitute(
    data: Any,
    env: Mapping[str, str],
    problems: ProblemList,
    plain: set[KeyPath],
    secret_paths: set[KeyPath],
    skip: Callable[[KeyPath], bool] = lambda path: False,
    unresolved: set[KeyPath] | None = None,
) -> Any:
    """Return ``data`` with references replaced. Paths whose value came from the
    environment are added to ``secret_paths`` so messages never echo them; paths
    with a reference that could not be resolved go to ``unresolved``."""
    from rulesengine.spec.yamlsrc import resolve_plain_scalar

    def walk(value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            return {k: walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, (*path, i)) for i, v in enumerate(value)]
        if not isinstance(value, str) or "$" not in value or skip(path):
            return value
        used_env = False
        whole = _REF.fullmatch(value) is not None and not value.startswith("$${")

        def repl(m: re.Match[str]) -> str:
            nonlocal used_env
            if m.group(0) == "$${":
                return "${"
            name, default, _bad = m.group(1), m.group(2), m.group(3)
            if name is None:
                problems.add(
                    path,
                    f"invalid variable reference '{m.group(0)}': "
                    "write ${NAME} or ${NAME:-default}",
                )
                if unresolved is not None:
                    unresolved.add(path)
                return m.group(0)
            if default is not None and not env.get(name):  # like the shell: unset or empty
                return default
            if name in env:
                used_env = True
                return env[name]
            problems.add(
                path,
                f"environment variable '{name}' is not set "
                f"(set it, or give a default: ${{{name}:-value}})",
            )
            if unresolved is not None:
                unresolved.add(path)
            return m.group(0)

        out = _REF.sub(repl, value)
        if used_env:
            secret_paths.add(path)
        if whole and path in plain and out not in (value, ""):
            return resolve_plain_scalar(out)
        return out

    return walk(data, ())
