"""The tutorial baseline: Flask, served by gunicorn, calling Keras ``model.predict`` per request.

Deliberately the common pattern, not a tuned one: each gunicorn worker loads the SavedModel
as a Keras model when it starts and runs one ``predict`` per HTTP request. It answers the same
TensorFlow Serving routes and JSON shape as the real runtime, so one client drives both.
Started by serving_bench.py with the SavedModel version directory on gunicorn's command line,
as the argument of the app factory: ``flask_baseline:create_app('<version directory>')``.
"""

from __future__ import annotations

import keras
import numpy as np
from flask import Flask, Response, jsonify, request


def create_app(model_path: str) -> Flask:
    """The app of one gunicorn worker, with its own copy of the model at ``model_path``."""
    # Keras 3 loads a bare SavedModel through TFSMLayer; wrapping it in a Model gives `.predict`.
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8), dtype="float32"),
            keras.layers.TFSMLayer(model_path, call_endpoint="serving_default"),
        ]
    )
    app = Flask(__name__)

    @app.get("/v1/models/digits")
    def status() -> Response:
        return jsonify({"model_version_status": [{"version": "1", "state": "AVAILABLE"}]})

    @app.post("/v1/models/digits:predict")
    def predict() -> Response | tuple[Response, int]:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or "instances" not in body:
            return jsonify({"error": "expected a JSON object with 'instances'"}), 400
        images = np.asarray(body["instances"], dtype=np.float32)
        outputs = model.predict(images, verbose=0)
        predictions = [
            {"probabilities": probabilities.tolist(), "classes": int(label)}
            for probabilities, label in zip(
                outputs["probabilities"], outputs["classes"], strict=True
            )
        ]
        return jsonify({"predictions": predictions})

    return app
