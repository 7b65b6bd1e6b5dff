"""Monitor families. Importing this package registers every built-in type."""

from rulesengine.monitors import checks, drift, kpis, metrics  # noqa: F401
from rulesengine.monitors.base import MONITOR_TYPES, MonitorType, lookup

__all__ = ["MONITOR_TYPES", "MonitorType", "lookup"]
