"""Fixtures the report tests share: a real SMTP server (from the delivery tests)
and the daemon harness's ``site`` (a config in a temporary folder)."""

from tests.daemon.conftest import site  # noqa: F401  (a pytest fixture)
from tests.delivery.conftest import smtp_receiver  # noqa: F401  (a pytest fixture)
