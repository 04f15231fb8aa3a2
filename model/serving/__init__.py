"""Python runtime speaking TensorFlow Serving's REST API, with dynamic batching and drain."""
