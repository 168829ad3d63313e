"""The multi-host tests run one cluster (deploy/cluster.py: a data host and two application
hosts in network namespaces, nginx in front) for the whole session, shared by every test that
asks for `cluster`; each test leaves it serving on both hosts. Like the fault tests they run
once, in CI's PostgreSQL + Redis pass (CLUSTER_TESTS=1 runs them in any pass, 0 in none), and
are skipped with the reason where network namespaces cannot be made (not root, no `ip`, ...).
The tests that need no namespaces (the deploy files, the channel layer's shards) always run."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from deploy.cluster import cluster_running, unavailable_reason
from tests.cluster.hosts import CLUSTER_ENV, Deployment
from tests.faults.deployment import postgres_pass_reason
from tests.receiver import receiver_running


def _reason_to_skip() -> str | None:
    return postgres_pass_reason("CLUSTER_TESTS", "multi-host tests") or unavailable_reason()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [
        item
        for item in items
        if "tests/cluster/" in str(item.fspath).replace(os.sep, "/")
        and "cluster" in getattr(item, "fixturenames", ())
    ]
    if not mine:
        return
    reason = _reason_to_skip()
    if reason is None:
        return
    for item in mine:
        item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def cluster() -> Iterator[Deployment]:
    with cluster_running(hosts=2, extra_env=CLUSTER_ENV) as run:
        with receiver_running(run.gateway) as receiver:
            deployment = Deployment(run=run, receiver=receiver)
            deployment.seed()
            yield deployment
