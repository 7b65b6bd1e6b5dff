"""Monitor families: base (the MonitorType interface and its registry), checks,
metrics, kpis, and drift (a subpackage). ``base.lookup`` loads the built-in types."""
