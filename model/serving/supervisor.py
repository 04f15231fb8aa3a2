"""SERVING_PROCESSES > 1: that many serving processes behind the same two ports.

One Python process keeps about one core busy (the event loop and the model's Python share a
GIL), so a pod with more CPU needs more processes to use it. Each process is a whole server
(``serving.server``: model copy, batcher, drain) started with ``spawn``, since TensorFlow's
threads do not survive a fork. They accept REST connections from one listening socket opened
here (the kernel hands each connection to a process that is waiting, so a busy one takes
fewer) and each binds the gRPC port with SO_REUSEPORT (gRPC's default on Linux).

What holds for one process holds for the group:
- ready: no process turns ready before every one has loaded its model (a barrier), since a
  request reaches whichever process accepts its connection;
- metrics: every process writes its values under PROMETHEUS_MULTIPROC_DIR, and any scrape
  reports the sums;
- drain: SIGTERM and SIGINT are passed on to every process, each drains as one process does,
  and the exit code is 0 only if every process drained completely;
- failure: a process that stops on its own (a failed load, a crash) makes the others drain
  and the group exit 1, so that Kubernetes restarts the container whole.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from multiprocessing.context import SpawnProcess
from types import FrameType

from prometheus_client.multiprocess import mark_process_dead

from serving.config import Settings

logger = logging.getLogger(__name__)
EXIT_OK = 0
EXIT_FAILED = 1
# uvicorn's default listen backlog.
BACKLOG = 2048
PASSED_ON = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
LOG_FORMAT = "%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s"


def supervise(settings: Settings) -> int:
    """Run ``settings.processes`` serving processes until they have all stopped."""
    shared_dir = tempfile.mkdtemp(prefix="serving-metrics-")
    # Inherited by the processes, whose prometheus_client reads it when first imported.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = shared_dir
    context = multiprocessing.get_context("spawn")
    all_loaded = context.Barrier(settings.processes)
    try:
        with _listen(settings.host, settings.port) as listener:
            processes = [
                context.Process(
                    target=_serve,
                    args=(settings, listener, all_loaded),
                    name=f"serving-{number}",
                )
                for number in range(1, settings.processes + 1)
            ]
            return _Group(processes, all_loaded, shared_dir).run()
    finally:
        shutil.rmtree(shared_dir, ignore_errors=True)


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=BACKLOG)


class _Group:
    def __init__(
        self,
        processes: list[SpawnProcess],
        all_loaded: threading.Barrier,
        shared_dir: str,
    ) -> None:
        self._running = processes
        self._all_loaded = all_loaded
        self._shared_dir = shared_dir
        self._stopping = False
        self._failed = False

    def run(self) -> int:
        handlers = {sig: signal.signal(sig, self._pass_on) for sig in PASSED_ON}
        try:
            for process in self._running:
                process.start()
            # Signalled while starting them: the late ones need it too (the early ones get it
            # twice, which stops them at once: nothing is in flight yet).
            if self._stopping:
                self._signal_all(signal.SIGTERM)
            while self._running:
                multiprocessing.connection.wait([process.sentinel for process in self._running])
                for process in [p for p in self._running if p.exitcode is not None]:
                    self._running.remove(process)
                    self._ended(process)
                    process.join()  # reaped: multiprocessing lets go of it
        finally:
            # Also lets go of this group, so the barrier's semaphores are released before
            # serving.__main__'s os._exit (else the resource tracker reports them leaked).
            for sig, handler in handlers.items():
                signal.signal(sig, handler)
        return EXIT_FAILED if self._failed else EXIT_OK

    def _pass_on(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: the processes count signals (the second one stops at once).
        self._stopping = True
        self._signal_all(sig)

    def _signal_all(self, sig: int) -> None:
        for process in self._running:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, sig)

    def _ended(self, process: SpawnProcess) -> None:
        # Its gauges leave the sums; its counters stay in them.
        mark_process_dead(process.pid, self._shared_dir)  # type: ignore[no-untyped-call]
        if process.exitcode == EXIT_OK and self._stopping:
            return
        logger.error("%s stopped with exit code %s", process.name, process.exitcode)
        if not self._failed:
            self._failed = True
            # Processes still loading would wait for this one forever.
            self._all_loaded.abort()
            if not self._stopping:
                logger.error("draining the other serving processes")
                self._stopping = True
                self._signal_all(signal.SIGTERM)


def _serve(settings: Settings, listener: socket.socket, all_loaded: threading.Barrier) -> None:
    """One serving process (the spawned child's entry point)."""
    # Out of the supervisor's process group: a terminal's Ctrl-C reaches the supervisor only,
    # which passes it on once (twice would mean "stop without draining").
    os.setpgrp()
    # Killed with the supervisor (SIGKILL leaves it no time to pass anything on) rather than
    # left holding the ports.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    supervisor = multiprocessing.parent_process()
    if supervisor is None or os.getppid() != supervisor.pid:
        os._exit(EXIT_FAILED)  # it died before prctl took effect
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    from serving.server import build_server  # noqa: PLC0415

    def wait_for_siblings() -> None:
        logger.info("model loaded; waiting for the other serving processes")
        try:
            all_loaded.wait()
        except threading.BrokenBarrierError:
            raise RuntimeError("another serving process failed to load the model") from None

    server = build_server(settings, wait_for_siblings)
    server.run(sockets=[listener])
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # As in serving.__main__: TensorFlow's interpreter teardown takes seconds and has nothing
    # left to do.
    os._exit(server.exit_code)
