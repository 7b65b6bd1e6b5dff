"""Evidently's default data-drift report on the benchmark data (run in its own venv).

    benchmarks/.venv-evidently/bin/python benchmarks/evidently_drift.py DATA_DIR

Loads both parquet files with pandas (the 25 feature columns; ``ts`` is left out),
declares the numeric and categorical columns as the data has them, runs
``Report([DataDriftPreset()])`` with its defaults and prints one JSON line: phase
timings, Evidently's version, and per column the method, value, threshold and
whether Evidently calls it drifted.
"""

from __future__ import annotations

import json
import re
import sys
import time

T0 = time.perf_counter()

import pandas as pd  # noqa: E402
from evidently import DataDefinition, Dataset, Report  # noqa: E402
from evidently import __version__ as evidently_version  # noqa: E402
from evidently.presets import DataDriftPreset  # noqa: E402

T_IMPORT = time.perf_counter()

# "ValueDrift(column=num_04,method=Wasserstein distance (normed),threshold=0.1)"
VALUE_DRIFT = re.compile(r"^ValueDrift\(column=(?P<column>.*),method=(?P<method>.*),threshold=")
P_VALUE_METHODS = ("p_value", "test")  # Evidently names p-value methods "... test"


def main() -> None:
    data = sys.argv[1]
    with open(f"{data}/manifest.json") as fh:
        manifest = json.load(fh)
    numeric, categorical = manifest["numeric"], manifest["categorical"]
    columns = numeric + categorical
    reference = pd.read_parquet(f"{data}/reference.parquet", columns=columns)
    current = pd.read_parquet(f"{data}/current.parquet", columns=columns)
    t_load = time.perf_counter()

    definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    t_run = time.perf_counter()
    result = snapshot.dict()
    t_dict = time.perf_counter()

    per_column = {}
    share = None
    for metric in result["metrics"]:
        config = metric.get("config", {})
        if config.get("type", "").endswith(":DriftedColumnsCount"):
            share = metric["value"]
            continue
        match = VALUE_DRIFT.match(metric.get("metric_name", ""))
        if not match:
            continue
        method = config.get("method") or match["method"]
        threshold = float(config["threshold"])
        value = float(metric["value"])
        # Evidently: distances drift at or above the threshold, p-values below it
        is_p = any(word in method.lower() for word in P_VALUE_METHODS)
        drifted = value < threshold if is_p else value >= threshold
        per_column[config.get("column") or match["column"]] = {
            "method": method,
            "value": value,
            "threshold": threshold,
            "drifted": drifted,
        }
    print(
        json.dumps(
            {
                "evidently": evidently_version,
                "pandas": pd.__version__,
                "rows": [len(reference), len(current)],
                "columns": per_column,
                "drifted_columns": [c for c, v in per_column.items() if v["drifted"]],
                "drifted_count": share,
                "import_s": T_IMPORT - T0,
                "load_s": t_load - T_IMPORT,
                "report_s": t_run - t_load,
                "dict_s": t_dict - t_run,
                "total_s": time.perf_counter() - T0,
            }
        )
    )


if __name__ == "__main__":
    main()
