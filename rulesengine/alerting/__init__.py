"""Alerting: alert state machine, routing and grouping, delivery through Apprise."""
