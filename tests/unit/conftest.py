"""Unit layer: every test runs against fresh Pulumi mocks (no engine, cloud, cluster or Docker)."""

from collections.abc import Iterator

import pytest

from tests.unit.harness import StackMocks, install_mocks


@pytest.fixture(autouse=True)
def mocks() -> Iterator[StackMocks]:
    yield install_mocks()
