"""Fixtures the report tests share with the delivery tests: a real SMTP server."""

from tests.delivery.conftest import smtp_receiver  # noqa: F401  (a pytest fixture)
