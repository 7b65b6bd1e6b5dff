"""The logger tests share the S3 tests' real moto server on loopback."""

from tests.s3.conftest import S3Server, s3_server

__all__ = ["S3Server", "s3_server"]
