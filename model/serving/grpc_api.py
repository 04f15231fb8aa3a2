"""TensorFlow Serving's gRPC API: PredictionService (Predict, GetModelMetadata) and
ModelService.GetModelStatus, from the published protos (tensorflow-serving-api).

It shares the REST side's batcher, metrics and drain (the Runtime), and answers with
TensorFlow Serving's status codes and messages, so a client can switch runtimes without
changing protocol. Classify, Regress and MultiInference need a signature that takes tf.Examples,
which a predict-only model does not have: they answer INVALID_ARGUMENT, as TF Serving does.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Literal, TypeAlias, TypeVar

import grpc
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
    status_pb2,
)

from serving.model import LoadedModel, TensorInfo
from serving.protocol import (
    RequestError,
    check_rows,
    check_shape,
    no_example_signature,
    row_count,
)
from serving.runtime import NotAcceptingError, Runtime

logger = logging.getLogger(__name__)
Reply = TypeVar("Reply")
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
SIGNATURE_DEF_FIELD = "signature_def"


class _RpcError(Exception):
    """An RPC's answer when it is not a reply: the status code and TF Serving's message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


async def _answer(
    runtime: Runtime,
    api: str,
    context: Context,
    handle: Callable[[], Awaitable[Reply]],
) -> Reply:
    """Run one RPC: failures become their status, and every call is counted and timed in
    TF Serving's series with entrypoint GRPC."""
    started = time.perf_counter()
    code = grpc.StatusCode.OK
    try:
        return await handle()
    except _RpcError as error:
        code = error.code
        await context.abort(code, str(error))
    except NotAcceptingError as error:
        code = grpc.StatusCode.UNAVAILABLE
        await context.abort(code, str(error))
    except RequestError as error:
        code = grpc.StatusCode.INVALID_ARGUMENT
        await context.abort(code, str(error))
    except Exception as error:
        logger.exception("%s failed", api)
        code = grpc.StatusCode.INTERNAL
        await context.abort(code, f"{api} failed: {error}")
    finally:
        runtime.metrics.record_request(
            runtime.settings.model_name, api, "GRPC", code.name, time.perf_counter() - started
        )
    raise AssertionError("context.abort raises")  # pragma: no cover


def _served(runtime: Runtime, spec: model_pb2.ModelSpec) -> LoadedModel:
    """The loaded model when `spec` names it (any version, or ours); TF Serving's NOT_FOUND
    otherwise."""
    model = runtime.model
    if model is None:
        raise NotAcceptingError(runtime.not_ready_reason())
    if spec.HasField("version_label"):
        raise _RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f"Unrecognized servable version label: {spec.version_label}",
        )
    wanted = spec.version.value if spec.HasField("version") else None
    if spec.name != model.name or wanted not in (None, model.version):
        which = f"Latest({spec.name})" if wanted is None else f"Specific({spec.name}, {wanted})"
        raise _RpcError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: {which}")
    return model


def _signature(spec: model_pb2.ModelSpec, model: LoadedModel) -> str:
    name = spec.signature_name or model.signature_name
    if name != model.signature_name:
        raise _RpcError(
            grpc.StatusCode.FAILED_PRECONDITION, f'Serving signature key "{name}" not found.'
        )
    return name


def _reply_spec(model: LoadedModel, signature_name: str) -> model_pb2.ModelSpec:
    spec = model_pb2.ModelSpec(name=model.name, signature_name=signature_name)
    spec.version.value = model.version
    return spec


def to_array(
    name: str, tensor: tensor_pb2.TensorProto, info: TensorInfo, max_bytes: int
) -> np.ndarray:
    """A request tensor as the array the model takes, checked like a REST input. Its declared
    shape is checked before anything is decoded: one value in `float_val` fills the whole
    shape, so a tiny message could otherwise ask for any amount of memory."""
    if tensor.dtype != types_pb2.DataType.Value(info.dtype_name):
        got = types_pb2.DataType.Name(tensor.dtype)
        raise RequestError(f"input {name!r} must be {info.dtype_name}; got {got}")
    shape = [dim.size for dim in tensor.tensor_shape.dim]
    check_shape(name, shape, info)
    decoded_bytes = math.prod(shape) * info.dtype.itemsize
    if decoded_bytes > max_bytes:
        raise RequestError(
            f"input {name!r} has shape {shape}: {decoded_bytes} bytes once decoded; "
            f"at most {max_bytes} are allowed (MAX_REQUEST_BYTES)"
        )
    try:
        if tensor.tensor_content:
            return np.frombuffer(tensor.tensor_content, info.dtype).reshape(shape)
        array: np.ndarray = tf.make_ndarray(tensor)
        return array
    except (ValueError, TypeError) as error:
        raise RequestError(f"input {name!r} is malformed: {error}") from None


def to_tensor(array: np.ndarray, info: TensorInfo) -> tensor_pb2.TensorProto:
    """An output array as a TensorProto, its bytes in tensor_content as TF Serving sends."""
    return tensor_pb2.TensorProto(
        dtype=types_pb2.DataType.Value(info.dtype_name),
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in array.shape]
        ),
        tensor_content=np.ascontiguousarray(array, dtype=info.dtype).tobytes(),
    )


def _inputs(
    request: predict_pb2.PredictRequest, model: LoadedModel, max_rows: int, max_bytes: int
) -> tuple[dict[str, np.ndarray], int]:
    sent, expected = set(request.inputs), set(model.inputs)
    if sent != expected:
        # TF Serving's wording (predict_util.cc).
        raise RequestError(
            f"input size does not match signature: {len(sent)}!={len(expected)} "
            f"len({{{','.join(sorted(sent))}}}) != len({{{','.join(sorted(expected))}}}). "
            f"Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}."
        )
    arrays = {
        name: to_array(name, request.inputs[name], info, max_bytes)
        for name, info in model.inputs.items()
    }
    count = row_count(arrays)
    check_rows(count, max_rows)
    return arrays, count


def _output_names(request: predict_pb2.PredictRequest, model: LoadedModel) -> list[str]:
    wanted = list(request.output_filter) or list(model.outputs)
    for alias in wanted:
        if alias not in model.outputs:
            raise RequestError(
                f"output tensor alias not found in signature: {alias} Outputs expected to be "
                f"in the set {{{','.join(sorted(model.outputs))}}}."
            )
    if len(set(wanted)) != len(wanted):
        duplicate = next(alias for alias in wanted if wanted.count(alias) > 1)
        raise RequestError(f"duplicate output tensor alias: {duplicate}")
    return wanted


class PredictionService(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def Predict(  # noqa: N802 (the proto's method name)
        self, request: predict_pb2.PredictRequest, context: Context
    ) -> predict_pb2.PredictResponse:
        return await _answer(self.runtime, "Predict", context, lambda: self._predict(request))

    async def _predict(self, request: predict_pb2.PredictRequest) -> predict_pb2.PredictResponse:
        runtime = self.runtime
        with runtime.admit() as batcher:
            model = _served(runtime, request.model_spec)
            signature_name = _signature(request.model_spec, model)
            settings = runtime.settings
            arrays, rows = _inputs(
                request, model, settings.max_batch_size, settings.max_request_bytes
            )
            names = _output_names(request, model)
            outputs = await batcher.submit(arrays, rows)
        return predict_pb2.PredictResponse(
            model_spec=_reply_spec(model, signature_name),
            outputs={name: to_tensor(outputs[name], model.outputs[name]) for name in names},
        )

    async def GetModelMetadata(  # noqa: N802
        self,
        request: get_model_metadata_pb2.GetModelMetadataRequest,
        context: Context,
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        return await _answer(
            self.runtime, "GetModelMetadata", context, lambda: self._metadata(request)
        )

    async def _metadata(
        self, request: get_model_metadata_pb2.GetModelMetadataRequest
    ) -> get_model_metadata_pb2.GetModelMetadataResponse:
        model = _served(self.runtime, request.model_spec)
        if not request.metadata_field:
            raise RequestError("GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise RequestError(f"Metadata field {field} is not supported")
        response = get_model_metadata_pb2.GetModelMetadataResponse(
            model_spec=_reply_spec(model, "")
        )
        signatures = get_model_metadata_pb2.SignatureDefMap(signature_def=model.signatures)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(signatures)
        return response

    async def Classify(self, request: Any, context: Context) -> Any:  # noqa: N802
        return await self._examples("Classify", "classification", request.model_spec, context)

    async def Regress(self, request: Any, context: Context) -> Any:  # noqa: N802
        return await self._examples("Regress", "regression", request.model_spec, context)

    async def MultiInference(self, request: Any, context: Context) -> Any:  # noqa: N802
        spec = request.tasks[0].model_spec if request.tasks else None
        return await self._examples("MultiInference", "classification", spec, context)

    async def _examples(
        self,
        api: str,
        kind: Literal["classification", "regression"],
        spec: model_pb2.ModelSpec | None,
        context: Context,
    ) -> Any:
        """As REST's :classify and :regress: the predict signature takes no tf.Examples."""

        async def refuse() -> Any:
            if spec is None:
                raise RequestError(f"{api} request has no tasks")
            model = _served(self.runtime, spec)
            name = spec.signature_name or model.signature_name
            if name != model.signature_name:
                raise RequestError(f"No signature was found with the name: {name}")
            raise RequestError(no_example_signature(kind, list(model.inputs), model.signature_name))

        return await _answer(self.runtime, api, context, refuse)


class ModelService(model_service_pb2_grpc.ModelServiceServicer):
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def GetModelStatus(  # noqa: N802
        self,
        request: get_model_status_pb2.GetModelStatusRequest,
        context: Context,
    ) -> get_model_status_pb2.GetModelStatusResponse:
        return await _answer(self.runtime, "GetModelStatus", context, lambda: self._status(request))

    async def _status(
        self, request: get_model_status_pb2.GetModelStatusRequest
    ) -> get_model_status_pb2.GetModelStatusResponse:
        model = _served(self.runtime, request.model_spec)
        if not self.runtime.ready:
            raise NotAcceptingError(self.runtime.not_ready_reason())
        status = get_model_status_pb2.ModelVersionStatus(
            version=model.version,
            state=get_model_status_pb2.ModelVersionStatus.AVAILABLE,
            status=status_pb2.StatusProto(),  # error_code OK, set as TF Serving sets it
        )
        return get_model_status_pb2.GetModelStatusResponse(model_version_status=[status])


def create_grpc_server(runtime: Runtime, max_message_bytes: int) -> grpc.aio.Server:
    """The gRPC server, not yet bound or started. A message over `max_message_bytes` (the
    REST body limit) is refused with RESOURCE_EXHAUSTED by gRPC itself."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
        ]
    )
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionService(runtime), server
    )
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelService(runtime), server)
    return server
