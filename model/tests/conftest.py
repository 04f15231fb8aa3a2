"""Session fixtures: the held-out digits and one running server for the HTTP tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support import MAX_BATCH_SIZE, MAX_REQUEST_BYTES, ServerProcess, start_server
from training.train import Split, load_split


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the HTTP tests; a 20 ms batch window so concurrent requests coalesce."""
    running = start_server(
        tmp_path_factory.mktemp("server") / "server.log",
        MAX_BATCH_SIZE=str(MAX_BATCH_SIZE),
        BATCH_TIMEOUT_MICROS="20000",
        MAX_REQUEST_BYTES=str(MAX_REQUEST_BYTES),
    )
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Starts a server of the test's own (with these environment variables) and makes sure it
    is gone afterwards, whatever the test's end: an assertion before its SIGTERM would
    otherwise leave it running."""
    started: list[ServerProcess] = []

    def start_one(**env: str) -> ServerProcess:
        server = start_server(tmp_path / f"server-{len(started)}.log", **env)
        started.append(server)
        return server

    yield start_one
    for server in started:
        server.kill()


@pytest.fixture(scope="session")
def split() -> Split:
    return load_split()


@pytest.fixture(scope="session")
def image(split: Split) -> list[list[float]]:
    """One held-out image as a JSON-ready 8x8 list."""
    value: list[list[float]] = split.x_test[0].tolist()
    return value
