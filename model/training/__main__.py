"""``python -m training``: train, check accuracy, export the SavedModel and write metrics.

Run from model/ with model/.venv. Regenerates model/export/digits/<version>/ and
model/export/metrics.json, both committed; ``--model diabetes`` exports the second model,
model/export/diabetes/<version>/ (training.diabetes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Before TensorFlow is imported: keep its C++ INFO chatter out of the training log.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from training import diabetes
from training.export import MODEL_NAME, AccuracyTooLowError, train_and_export

EXPORT_DIR = Path(__file__).resolve().parent.parent / "export"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument("--export-dir", type=Path, default=EXPORT_DIR)
    parser.add_argument("--version", type=int, default=1)
    parser.add_argument("--model", choices=[MODEL_NAME, diabetes.MODEL_NAME], default=MODEL_NAME)
    args = parser.parse_args(argv)
    if args.model == diabetes.MODEL_NAME:
        path, rmse = diabetes.export(args.export_dir / diabetes.MODEL_NAME, args.version)
        print(f"least-squares fit, RMSE {rmse:.2f}: exported {path}")
        return 0
    try:
        result = train_and_export(args.export_dir, args.version)
    except AccuracyTooLowError as error:
        print(f"error: {error}; not exporting", file=sys.stderr)
        return 1
    print(
        f"held-out accuracy {result.test_accuracy:.4f}: exported "
        f"{args.export_dir / MODEL_NAME / str(args.version)} and {args.export_dir / 'metrics.json'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
