"""Versions of the bundled model that load and serve but misbehave, for the canary analysis:
one fails on part of the inputs, one is slower. Run with the model's interpreter (TensorFlow):

    model/.venv/bin/python tests/metrics/model_variants.py OUT_DIR

writes OUT_DIR/erroring/1 and OUT_DIR/slow/1, each with the bundled model's signature.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import tensorflow as tf

BUNDLED = Path(__file__).resolve().parents[2] / "model" / "export" / "digits" / "1"
# An image whose first pixel is brighter than this fails: a model that breaks on some inputs
# (the server answers 500 INTERNAL, as for any model that fails on a valid request).
ERRORING_FIRST_PIXEL = 8.0
# Extra work per request: chained 256x256 matrix products, a few hundred milliseconds on one core.
SLOW_MATMULS = 1000
SLOW_SIZE = 256


class Variant(tf.Module):  # type: ignore[misc]  # tensorflow ships no type hints
    def __init__(self, kind: str) -> None:
        super().__init__(name="digits")
        self.kind = kind
        self.bundled = tf.saved_model.load(str(BUNDLED))

    @tf.function(  # type: ignore[untyped-decorator]
        input_signature=[tf.TensorSpec([None, 8, 8], tf.float32, name="images")]
    )
    def serve(self, images: tf.Tensor) -> dict[str, Any]:
        if self.kind == "erroring":
            guard = tf.debugging.assert_less_equal(
                images[:, 0, 0], ERRORING_FIRST_PIXEL, message="first pixel out of range"
            )
        else:
            # From the input, so that no optimizer can fold the products into a constant.
            seed = tf.fill([SLOW_SIZE, SLOW_SIZE], 1.0 / SLOW_SIZE + tf.reduce_mean(images) * 0)
            _, guard = tf.while_loop(
                lambda i, _: i < SLOW_MATMULS,
                lambda i, product: (i + 1, tf.matmul(product, seed)),
                (tf.constant(0), seed),
            )
        with tf.control_dependencies([guard]):
            outputs = self.bundled.signatures["serving_default"](images=images)
            return {name: tf.identity(value) for name, value in outputs.items()}


def main(out_dir: Path) -> None:
    for kind in ("erroring", "slow"):
        variant = Variant(kind)
        tf.saved_model.save(
            variant, str(out_dir / kind / "1"), signatures={"serving_default": variant.serve}
        )


if __name__ == "__main__":
    main(Path(sys.argv[1]))
