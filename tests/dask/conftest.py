"""A real Dask cluster on loopback: a ``LocalCluster`` of two worker processes
(one thread each), started once for the folder. Process workers deserialise
the plan's LazyFrames as a remote cluster's would; only the network is local."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from rulesengine.engine.distributed import close_executors

pytest.importorskip("distributed")  # the `dask` extra (also in `test`)


def local_cluster(**kw: Any) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address="127.0.0.1:0",  # its HTTP routes: loopback, a free port
        worker_dashboard_address=None,
        **kw,
    )


@pytest.fixture(scope="session")
def cluster() -> Iterator[Any]:
    """Two process workers on 127.0.0.1, for every test of the folder."""
    c = local_cluster()
    try:
        yield c
    finally:
        close_executors()
        c.close(timeout=20)


@pytest.fixture
def client(cluster: Any) -> Iterator[Any]:
    """A client of the shared cluster, for the tests' own look at it."""
    from distributed import Client

    with Client(cluster.scheduler_address, set_as_default=False, timeout=20) as c:
        yield c
