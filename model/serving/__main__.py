"""Entry point: ``python -m serving`` (run from model/ or with PYTHONPATH=model)."""

import logging
import os
import sys

# Before TensorFlow is imported: drop its C++ INFO lines (CPU feature notes), keep warnings.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

from serving.main import main

exit_code = main()
logging.shutdown()
sys.stdout.flush()
sys.stderr.flush()
# Skips the interpreter's teardown, which with TensorFlow loaded takes seconds (more than the
# drain itself, usually) and has nothing left to do: every request is answered, logs flushed.
os._exit(exit_code)
