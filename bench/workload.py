"""The benchmark's workload: the same single-image requests for every server. The REST bodies
(one JSON predict per digit image of scikit-learn's digits, with the images and their labels to
check answers against) and, for ghz, the gRPC files: PredictionService's descriptors as a
protoset and one length-prefixed PredictRequest per image.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


@dataclass(frozen=True)
class GrpcFiles:
    protoset: Path
    """PredictionService's proto descriptors with their imports (ghz has no .proto files)."""
    requests: Path
    """One PredictRequest per image, each prefixed by its length: ghz sends them in turn."""


def request_bodies() -> tuple[list[bytes], np.ndarray, np.ndarray]:
    digits = load_digits()
    images = digits.images.astype(np.float32)
    bodies = [json.dumps({"instances": [image.tolist()]}).encode() for image in digits.images]
    return bodies, images, digits.target


def write_grpc_files(directory: Path, images: np.ndarray) -> GrpcFiles:
    # Imported here: TensorFlow Serving's protos import TensorFlow.
    import tensorflow as tf  # noqa: PLC0415
    from google.protobuf import descriptor, descriptor_pb2  # noqa: PLC0415
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2  # noqa: PLC0415

    descriptors = descriptor_pb2.FileDescriptorSet()
    added: set[str] = set()

    def add(file: descriptor.FileDescriptor) -> None:
        if file.name in added:
            return
        for dependency in file.dependencies:
            add(dependency)
        added.add(file.name)
        file.CopyToProto(descriptors.file.add())

    add(prediction_service_pb2.DESCRIPTOR)
    files = GrpcFiles(directory / "serving.protoset", directory / "requests.bin")
    files.protoset.write_bytes(descriptors.SerializeToString())
    with files.requests.open("wb") as out:
        for image in images:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = "digits"
            request.inputs["images"].CopyFrom(tf.make_tensor_proto(image[np.newaxis]))
            message = request.SerializeToString()
            out.write(varint(len(message)) + message)
    return files


def varint(value: int) -> bytes:
    """Protobuf's base-128 varint: the length prefix of each message in ghz's binary file."""
    encoded = bytearray()
    while value > 0x7F:
        encoded.append(value & 0x7F | 0x80)
        value >>= 7
    encoded.append(value)
    return bytes(encoded)
