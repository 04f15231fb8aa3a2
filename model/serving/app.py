"""HTTP layer: TensorFlow Serving's REST API, health and metrics endpoints on Starlette."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import orjson
from starlette.applications import Starlette
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving import protocol
from serving.asgi import Answer, BodyTooLargeError, content_length, read_body
from serving.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from serving.metrics import GRPC_STATUS_OF_HTTP, Metrics
from serving.protocol import RequestError
from serving.runtime import NotAcceptingError, Phase, Runtime

logger = logging.getLogger(__name__)
METRICS_PATHS = ("/metrics", "/monitoring/prometheus/metrics")


def _json(body: bytes | dict[str, Any], status: int = 200, *, close: bool = False) -> Answer:
    return Answer(body if isinstance(body, bytes) else orjson.dumps(body), status, close)


def _error(message: str, status: int, *, close: bool = False) -> Answer:
    return Answer(protocol.error_body(message), status, close)


def _json_route(path: str, handler: Callable[[Request], Awaitable[Answer]], method: str) -> Route:
    """A route whose handler answers JSON, handed to Starlette as its Response."""

    async def endpoint(request: Request) -> Response:
        return (await handler(request)).response()

    return Route(path, endpoint, methods=[method])


class _ModelNameConvertor(Convertor[str]):
    """A path segment without ':', so ``GET /v1/models/digits:predict`` is not a status call."""

    regex = "[^/:]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("model_name", _ModelNameConvertor())


class _Handlers:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings

    def _unavailable(self) -> Answer:
        runtime = self.runtime
        return _error(runtime.not_ready_reason(), 503, close=runtime.phase is not Phase.LOADING)

    async def health(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def metrics(self, request: Request) -> Response:
        return Response(self.runtime.metrics.render(), media_type=METRICS_CONTENT_TYPE)

    def _not_found(self, request: Request, not_found: str) -> Answer | None:
        """The 404 when the path names another model or version; None when it names ours."""
        name = request.path_params["name"]
        version = request.path_params.get("version")
        model = self.runtime.model
        if name != self.settings.model_name:
            return _error(not_found.format(name=name, version=version), 404)
        if version is not None and model is not None and version != model.version:
            return _error(not_found.format(name=name, version=version), 404)
        return None

    async def status(self, request: Request) -> Answer:
        version = request.path_params.get("version")
        not_found = (
            "Could not find any versions of model {name}"
            if version is None
            else "Could not find version {version} of model {name}"
        )
        if (problem := self._not_found(request, not_found)) is not None:
            return problem
        model = self.runtime.model
        if self.runtime.phase is not Phase.READY or model is None:
            return self._unavailable()
        return _json(
            {
                "model_version_status": [
                    {
                        "version": str(model.version),
                        "state": "AVAILABLE",
                        "status": {"error_code": "OK", "error_message": ""},
                    }
                ]
            }
        )

    async def metadata(self, request: Request) -> Answer:
        if (problem := self._not_found(request, _servable_not_found(request))) is not None:
            return problem
        model = self.runtime.model
        if model is None:
            return self._unavailable()
        return _json(
            {
                "model_spec": {
                    "name": model.name,
                    "signature_name": "",
                    "version": str(model.version),
                },
                "metadata": {"signature_def": {"signature_def": model.signature_defs}},
            }
        )

    async def predict(self, request: Request) -> Answer:
        if (problem := self._not_found(request, _servable_not_found(request))) is not None:
            return problem
        return await self.predict_served(request.receive, request.headers.get("content-length"))

    async def predict_served(self, receive: Receive, declared_length: str | None) -> Answer:
        """A predict call already known to name the served model, its body still unread."""
        try:
            with self.runtime.admit() as batcher:
                body = await read_body(receive, declared_length, self.settings.max_request_bytes)
                model = self.runtime.model
                assert model is not None, "admitted before the model was loaded"
                parsed = protocol.parse_predict(body, model.inputs, model.signature_name)
                protocol.check_rows(parsed.rows, self.settings.max_batch_size)
                outputs = await batcher.submit(parsed.inputs, parsed.rows, inline_when_alone=True)
        except NotAcceptingError:
            return self._unavailable()
        except (RequestError, BodyTooLargeError) as error:
            return _error(str(error), error.status)
        except ClientDisconnect:
            return Answer(b"", 400)
        except Exception as error:
            logger.exception("prediction failed")
            return _error(f"prediction failed: {error}", 500)
        return Answer(protocol.render_predict(parsed.format, outputs, parsed.rows))

    async def classify(self, request: Request) -> Answer:
        return await self._examples(request, "classification")

    async def regress(self, request: Request) -> Answer:
        return await self._examples(request, "regression")

    async def _examples(
        self, request: Request, kind: Literal["classification", "regression"]
    ) -> Answer:
        """Classify and regress take tf.Examples through a classify or regress signature; a
        predict-only model has none, and TF Serving answers 400 naming what is missing."""
        if (problem := self._not_found(request, _servable_not_found(request))) is not None:
            return problem
        model = self.runtime.model
        if model is None:
            return self._unavailable()
        try:
            body = await read_body(
                request.receive,
                request.headers.get("content-length"),
                self.settings.max_request_bytes,
            )
            signature, _ = protocol.parse_examples(body, model.signature_name)
        except (RequestError, BodyTooLargeError) as error:
            return _error(str(error), error.status)
        except ClientDisconnect:
            return Answer(b"", 400)
        if signature != model.signature_name:
            return _error(f"No signature was found with the name: {signature}", 400)
        return _error(
            protocol.no_example_signature(kind, list(model.inputs), model.signature_name), 400
        )

    async def unknown_label(self, request: Request) -> Answer:
        """No version labels are configured (TF Serving's --model_config_file sets them)."""
        label = request.path_params["label"]
        return _error(f"Unrecognized servable version label: {label}", 400)


def _servable_not_found(request: Request) -> str:
    """TensorFlow Serving's message for a predict or metadata call on an unknown servable."""
    if request.path_params.get("version") is None:
        return "Servable not found for request: Latest({name})"
    return "Servable not found for request: Specific({name}, {version})"


# The APIs TF Serving counts in its request series (its `API` label values).
MODEL_APIS = ("predict", "classify", "regress", "status", "metadata")


def _api_label(path: str) -> str:
    """Low-cardinality label for metrics; never the raw path."""
    if path.startswith("/v1/models/"):
        for verb in ("predict", "classify", "regress"):
            if path.endswith(f":{verb}"):
                return verb
        return "metadata" if path.endswith("/metadata") else "status"
    if path in METRICS_PATHS:
        return "metrics"
    return "health" if path == "/healthz" else "other"


class _ServingApp:
    """The ASGI app uvicorn runs. It counts and times every HTTP request (by API and status, and
    in TF Serving's series), and hands the call that carries the load, ``POST
    /v1/models/<served model>:predict``, straight to its handler on the raw ASGI messages:
    Starlette's routing, middleware layers, Request and Response cost more per request than
    decoding the JSON does. Every other request, versioned predict calls included, goes
    through Starlette's routes."""

    def __init__(self, routed: ASGIApp, handlers: _Handlers, metrics: Metrics) -> None:
        self._routed = routed
        self._handlers = handlers
        self._metrics = metrics
        # The served model's name labels TF Serving's series, not the path's: a path is client
        # input, and a label taken from it would grow without bound.
        self._model_name = handlers.settings.model_name
        self._predict_path = f"/v1/models/{self._model_name}:predict"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._routed(scope, receive, send)  # the lifespan
            return
        path = scope["path"]
        direct = path == self._predict_path and scope["method"] == "POST"
        api = "predict" if direct else _api_label(path)
        status = 500
        started = time.perf_counter()
        self._metrics.in_flight.inc()
        try:
            if direct:
                answer = await self._handlers.predict_served(receive, content_length(scope))
                status = answer.status
                await answer.send(send)
            else:
                status = await self._route(scope, receive, send)
        finally:
            self._record(api, status, time.perf_counter() - started)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Starlette's answer to the request; returns its status code."""
        status = 500

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self._routed(scope, receive, send_recording_status)
        return status

    def _record(self, api: str, status: int, elapsed: float) -> None:
        metrics = self._metrics
        metrics.in_flight.dec()
        metrics.record_http(api, str(status), elapsed)
        if api in MODEL_APIS:
            grpc_status = GRPC_STATUS_OF_HTTP.get(status, "UNKNOWN")
            metrics.record_request(self._model_name, api, "REST", grpc_status, elapsed)


async def _http_error(request: Request, exc: Exception) -> Response:
    """A path or method no route takes, as TF Serving answers it: under /v1/ a 400
    "Malformed request", elsewhere a 404, in its JSON error shape."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/v1/"):
        return _error(f"Malformed request: {request.method} {request.url.path}", 400).response()
    return _error(f"{exc.detail}: {request.method} {request.url.path}", exc.status_code).response()


def create_app(runtime: Runtime) -> ASGIApp:
    handlers = _Handlers(runtime)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loading = asyncio.create_task(runtime.load(), name="load-model")
        yield
        await loading
        await runtime.close()

    model_path = "/v1/models/{name:model_name}"
    version_path = f"{model_path}/versions/{{version:int}}"
    label_path = f"{model_path}/labels/{{label:model_name}}"
    routes = [
        Route("/healthz", handlers.health, methods=["GET"]),
        *(Route(path, handlers.metrics, methods=["GET"]) for path in METRICS_PATHS),
        _json_route(model_path, handlers.status, "GET"),
        _json_route(version_path, handlers.status, "GET"),
        _json_route(f"{model_path}/metadata", handlers.metadata, "GET"),
        _json_route(f"{version_path}/metadata", handlers.metadata, "GET"),
        *(
            route
            for path in (model_path, version_path)
            for route in (
                _json_route(f"{path}:predict", handlers.predict, "POST"),
                _json_route(f"{path}:classify", handlers.classify, "POST"),
                _json_route(f"{path}:regress", handlers.regress, "POST"),
            )
        ),
        _json_route(label_path, handlers.unknown_label, "GET"),
        _json_route(f"{label_path}/metadata", handlers.unknown_label, "GET"),
        *(
            _json_route(f"{label_path}:{verb}", handlers.unknown_label, "POST")
            for verb in ("predict", "classify", "regress")
        ),
    ]
    routed = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error},
    )
    return _ServingApp(routed, handlers, runtime.metrics)
