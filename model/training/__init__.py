"""Train the ``digits`` classifier and export it as a TensorFlow Serving SavedModel."""
