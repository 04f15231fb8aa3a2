"""The uvicorn server with a drain before its shutdown.

Drain contract: on the first SIGTERM (or SIGINT) the model status turns 503 and new
predictions are refused with 503 + ``Connection: close``, while the listener stays open so
probes see the 503. Once every admitted prediction has answered (or DRAIN_TIMEOUT_SECONDS
passed) uvicorn closes the listener and the connections, and the process exits: 0 after a
complete drain, 1 if it had to abandon requests or the model failed to load. A second signal
stops at once.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from types import FrameType

import grpc
import uvicorn

from serving.app import create_app
from serving.config import Settings
from serving.grpc_api import create_grpc_server
from serving.metrics import Metrics
from serving.runtime import Phase, Runtime

logger = logging.getLogger(__name__)
EXIT_OK = 0
EXIT_FAILED = 1
# Once the drain is over only quick answers (503s, probes, scrapes) can still be running.
SHUTDOWN_GRACE_SECONDS = 2


class DrainingServer(uvicorn.Server):
    """Stock uvicorn closes the listener on the first SIGTERM and, after shutting down,
    re-raises the signal, so the process dies with status 143 even after a clean shutdown.
    This one drains first and reports its own exit code.
    """

    def __init__(self, config: uvicorn.Config, runtime: Runtime) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.exit_code = EXIT_OK
        self.grpc: grpc.aio.Server | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """gRPC opens with REST, on the same event loop, in front of the same Runtime: while
        the model loads or drains it answers UNAVAILABLE, as REST answers 503."""
        settings = self.runtime.settings
        if settings.grpc_port:
            self.grpc = create_grpc_server(self.runtime, settings.max_request_bytes)
            self.grpc.add_insecure_port(f"{settings.host}:{settings.grpc_port}")
            await self.grpc.start()
        await super().startup(sockets)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.grpc is not None:
            # The drain is over (or abandoned): only refusals and status calls remain.
            await self.grpc.stop(SHUTDOWN_GRACE_SECONDS)
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a signal handler: only assigns attributes; on_tick acts on them.
        if self.runtime.phase is Phase.DRAINING or self.should_exit:
            logger.warning("second signal %d: stopping without waiting", sig)
            self.exit_code = EXIT_FAILED
            self.should_exit = self.force_exit = True
            return
        logger.info(
            "signal %d: draining %d in-flight predictions (at most %.0fs)",
            sig,
            self.runtime.active_predictions,
            self.runtime.settings.drain_timeout_s,
        )
        self.runtime.begin_drain()

    async def on_tick(self, counter: int) -> bool:
        """Called by uvicorn every 0.1 s; True ends the main loop and starts the shutdown."""
        runtime = self.runtime
        if runtime.phase is Phase.FAILED:
            self.exit_code = EXIT_FAILED
            return True
        if runtime.drained:
            logger.info("drain complete")
            return True
        if runtime.drain_expired:
            logger.error(
                "drain timed out with %d predictions in flight; abandoning them",
                runtime.active_predictions,
            )
            self.exit_code = EXIT_FAILED
            return True
        return await super().on_tick(counter)


def build_server(
    settings: Settings, wait_for_siblings: Callable[[], object] = lambda: None
) -> DrainingServer:
    runtime = Runtime(settings, Metrics(), wait_for_siblings)
    config = uvicorn.Config(
        create_app(runtime),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=settings.log_level,
        # uvicorn's loggers propagate to the root logger configured in main(): one format.
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    return DrainingServer(config, runtime)
