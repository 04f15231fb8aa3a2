"""``python -m serving``: read the environment, then serve until SIGTERM has drained."""

from __future__ import annotations

import logging
import sys

from serving.config import ConfigError, find_latest_version, load_settings
from serving.supervisor import LOG_FORMAT, supervise

EXIT_BAD_CONFIG = 2
logger = logging.getLogger("serving")


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as error:
        print(f"serving: {error}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    logging.basicConfig(level=settings.log_level.upper(), format=LOG_FORMAT)
    version, path = find_latest_version(settings.model_base_path)
    logger.info(
        "serving model %s version %d from %s on %s:%d in %d process(es)",
        settings.model_name,
        version,
        path,
        settings.host,
        settings.port,
        settings.processes,
    )
    if settings.processes > 1:
        return supervise(settings)
    # Imported only now: TensorFlow takes seconds to import, and a configuration error should
    # not wait for it (the supervisor never imports it).
    from serving.server import build_server  # noqa: PLC0415

    server = build_server(settings)
    server.run()
    return server.exit_code
