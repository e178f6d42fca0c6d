"""The FastAPI application: OpenAI's chat-completions API in front of any chat model.

``create_app(model)`` serves a :class:`~langchain_hybrid.ChatHybrid` (the router), a
plain :class:`~langchain_hybrid.ChatTransformers` (a local tier for other routers), or
any LangChain ``BaseChatModel``:

- ``POST /v1/chat/completions``: JSON or SSE streaming; the routing decision as the
  ``hybrid`` field (the last chunk when streaming) and, for JSON answers, the headers
  ``x-hybrid-tier``, ``x-hybrid-reason`` and ``x-hybrid-confidence``;
- ``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /healthz``, ``GET /metrics``.

Requests run concurrently on the event loop (``ainvoke`` / ``astream``), so concurrent
local generations meet in the engine's queue and are decoded as one batch.

Example:
    >>> from langchain_core.language_models import GenericFakeChatModel
    >>> from fastapi.testclient import TestClient
    >>> app = create_app(GenericFakeChatModel(messages=iter(["Hello!"])))
    >>> with TestClient(app) as client:  # no socket: the app is called in-process
    ...     r = client.post("/v1/chat/completions", json={
    ...         "model": "langchain-hybrid", "messages": [{"role": "user", "content": "Hi"}]})
    >>> r.status_code, r.json()["choices"][0]["message"]["content"]
    (200, 'Hello!')
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.runnables import Runnable, RunnableConfig
from openai.types import Model
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from langchain_hybrid.server.admission import Admission, Ticket
from langchain_hybrid.server.errors import HTTPError, http_error_of
from langchain_hybrid.server.metrics import CONTENT_TYPE, ServerMetrics
from langchain_hybrid.server.settings import ServerSettings
from langchain_hybrid.server.wire import (
    ChatCompletionRequest,
    ModelCall,
    chunk,
    completion,
    decision_of,
    finish_reason_of,
    new_completion_id,
    usage_of,
)

__all__ = ["create_app", "decision_headers"]

_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_DISCONNECT_POLL_S = 0.25


def decision_headers(decision: dict[str, Any] | None) -> dict[str, str]:
    """Return the ``x-hybrid-*`` headers of a decision (none for an unrouted model).

    Example:
        >>> decision_headers({"tier": "local", "reason": "confident", "confidence": -0.25})
        {'x-hybrid-tier': 'local', 'x-hybrid-reason': 'confident', 'x-hybrid-confidence': '-0.25'}
    """
    if not decision:
        return {}
    headers = {"x-hybrid-tier": str(decision["tier"]), "x-hybrid-reason": str(decision["reason"])}
    if decision.get("confidence") is not None:
        headers["x-hybrid-confidence"] = repr(float(decision["confidence"]))
    return headers


def create_app(model: BaseChatModel, settings: ServerSettings | None = None) -> FastAPI:
    """Return the ASGI app serving ``model`` with OpenAI's chat-completions API.

    Args:
        model: the chat model behind the API (``ChatHybrid``, ``ChatTransformers``...).
        settings: names, auth, limits (default: ``ServerSettings()``, no auth).
    """
    settings = settings or ServerSettings()
    metrics = ServerMetrics()
    admission = Admission(settings)
    started = int(time.time())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Blocking waits on local generation run in the default executor: size it so that
        # max_concurrency requests can wait at once (and so be batched together).
        executor = ThreadPoolExecutor(settings.threads, thread_name_prefix="langchain-hybrid")
        asyncio.get_running_loop().set_default_executor(executor)
        try:
            yield
        finally:
            executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="langchain-hybrid",
        summary="OpenAI-compatible chat completions, answered locally or escalated.",
        lifespan=lifespan,
    )
    app.state.model = model
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.admission = admission
    app.add_middleware(_CountRequests, metrics=metrics)

    def authorize(request: Request) -> None:
        if not settings.auth_required:
            return
        scheme, _, key = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(key.strip().encode(), k.encode()) for k in settings.api_keys
        ):
            raise HTTPError(
                401,
                "Missing or invalid API key: send 'Authorization: Bearer <key>' with a key "
                "the server was started with.",
                "authentication_error",
                code="invalid_api_key",
            )

    @app.exception_handler(HTTPError)
    async def _http_error(request: Request, exc: HTTPError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _starlette_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        error = HTTPError(exc.status_code, f"{exc.detail}: {request.method} {request.url.path}")
        error.type = kind  # type: ignore[assignment]
        return JSONResponse(error.body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        error = http_error_of(exc)
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": settings.model_name,
            "running_or_waiting": admission.admitted,
            "max_concurrency": settings.max_concurrency,
            "max_queue": settings.max_queue,
        }

    @app.get("/metrics")
    async def prometheus(request: Request) -> Response:
        authorize(request)
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    def model_object() -> dict[str, Any]:
        return Model(
            id=settings.model_name, object="model", created=started, owned_by="langchain-hybrid"
        ).model_dump(mode="json")

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        authorize(request)
        return {"object": "list", "data": [model_object()]}

    @app.get("/v1/models/{model_id:path}")
    async def get_model(model_id: str, request: Request) -> dict[str, Any]:
        authorize(request)
        if model_id != settings.model_name:
            raise _unknown_model(model_id, settings)
        return model_object()

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        authorize(request)
        body = await _read_body(request, settings.max_body_bytes)
        chat = _parse(body)
        if chat.model != settings.model_name:
            raise _unknown_model(chat.model, settings)
        call = _call_of(chat)
        runnable = _bind(model, call)
        config = RunnableConfig(callbacks=[metrics.routing], metadata=call.metadata)
        ticket = admission.admit()
        metrics.in_flight.inc()
        begun = time.perf_counter()
        if chat.stream:
            return await _stream(request, runnable, call, chat, config, ticket, metrics, begun)
        tier = "none"
        try:
            await ticket.acquire()
            message = await _until_disconnected(
                request,
                runnable.ainvoke(call.messages, config, stop=call.stop, **call.kwargs),
            )
            answer = completion(_as_ai_message(message), chat)
        except Exception as e:
            raise http_error_of(e) from e
        finally:
            ticket.release()
            metrics.in_flight.dec()
        decision = decision_of(message)
        tier = str(decision["tier"]) if decision else tier
        metrics.latency.labels(tier=tier, stream="false").observe(time.perf_counter() - begun)
        return Response(
            answer.model_dump_json(exclude_unset=True),
            media_type="application/json",
            headers=decision_headers(decision),
        )

    return app


def _unknown_model(model_id: str, settings: ServerSettings) -> HTTPError:
    return HTTPError(
        404,
        f"The model {model_id!r} does not exist here; this server serves {settings.model_name!r}.",
        param="model",
        code="model_not_found",
    )


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    too_large = HTTPError(
        413,
        f"The request body is larger than the server's limit of {limit} bytes.",
        code="request_too_large",
    )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise too_large
        parts.append(part)
    return b"".join(parts)


def _parse(body: bytes) -> ChatCompletionRequest:
    try:
        data = json.loads(body)
    except ValueError:
        raise HTTPError(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise HTTPError(400, "The request body must be a JSON object.")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        raise HTTPError(400, f"{where}: {message}", param=where or None) from None


def _call_of(chat: ChatCompletionRequest) -> ModelCall:
    try:
        return chat.call()
    except ValueError as e:
        raise HTTPError(400, str(e), param="messages") from None


def _bind(model: BaseChatModel, call: ModelCall) -> Runnable[Any, Any]:
    if not call.tools:
        if call.tool_choice not in (None, "none"):
            raise HTTPError(400, "tool_choice needs tools.", param="tool_choice")
        return model
    try:
        if call.tool_choice is None:
            return model.bind_tools(call.tools)
        return model.bind_tools(call.tools, tool_choice=call.tool_choice)  # type: ignore[arg-type]
    except NotImplementedError:
        raise HTTPError(
            422,
            f"The served model ({type(model).__name__}) cannot call tools.",
            param="tools",
            code="unsupported",
        ) from None
    except (ValueError, TypeError) as e:
        raise HTTPError(400, f"tools: {e}", param="tools") from None


def _as_ai_message(message: Any) -> AIMessage:
    if isinstance(message, AIMessage):
        return message
    return AIMessage(content=getattr(message, "content", str(message)))


async def _until_disconnected(request: Request, awaitable: Any) -> Any:
    """Await ``awaitable``; cancel it (ending local generation) if the client goes away."""
    task = asyncio.ensure_future(awaitable)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=_DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                raise HTTPError(499, "The client closed the request.")
    finally:
        if not task.done():
            task.cancel()


async def _stream(
    request: Request,
    runnable: Runnable[Any, Any],
    call: ModelCall,
    chat: ChatCompletionRequest,
    config: RunnableConfig,
    ticket: Ticket,
    metrics: ServerMetrics,
    begun: float,
) -> Response:
    """Start the SSE answer; errors before its first chunk are plain HTTP errors."""
    completion_id, created = new_completion_id(), int(time.time())
    chunks = cast(
        "AsyncGenerator[Any, None]",
        runnable.astream(call.messages, config, stop=call.stop, **call.kwargs),
    )
    try:
        await ticket.acquire()
        first = await _until_disconnected(request, anext(chunks, None))
    except BaseException as e:
        await chunks.aclose()
        ticket.release()
        metrics.in_flight.dec()
        if isinstance(e, Exception):
            raise http_error_of(e) from e
        raise

    async def events() -> AsyncIterator[str]:
        tier = "none"
        tool_index: dict[int, int] = {}
        whole: AIMessageChunk | None = None
        decision: dict[str, Any] | None = None
        try:
            yield _sse(chunk(None, chat, completion_id=completion_id, created=created, role=True))
            piece = first
            while piece is not None:
                whole = piece if whole is None else whole + piece
                decision = decision_of(piece) or decision
                out = chunk(
                    piece, chat, completion_id=completion_id, created=created, tool_index=tool_index
                )
                delta = out.choices[0].delta
                if delta.content or delta.tool_calls or out.choices[0].logprobs:
                    yield _sse(out)
                piece = await anext(chunks, None)
            finish = finish_reason_of(whole) if whole is not None else "stop"
            tier = str(decision["tier"]) if decision else tier
            yield _sse(
                chunk(
                    None,
                    chat,
                    completion_id=completion_id,
                    created=created,
                    finish_reason=finish,
                    decision=decision,
                )
            )
            if chat.include_usage:
                usage = usage_of(whole) if whole is not None else None
                yield _sse(
                    chunk(None, chat, completion_id=completion_id, created=created, usage=usage)
                )
            yield "data: [DONE]\n\n"
        except Exception as e:  # after the first byte the status is sent: an error event
            yield f"data: {json.dumps(http_error_of(e).body())}\n\n"
        finally:
            await chunks.aclose()  # a client that went away cancels generation here
            ticket.release()
            metrics.in_flight.dec()
            metrics.latency.labels(tier=tier, stream="true").observe(time.perf_counter() - begun)

    return _ClosingStreamingResponse(events(), media_type="text/event-stream", headers=_SSE_HEADERS)


def _sse(payload: Any) -> str:
    return f"data: {payload.model_dump_json(exclude_unset=True)}\n\n"


class _ClosingStreamingResponse(StreamingResponse):
    """A streaming response that always closes its body iterator, also on a disconnect."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            aclose = getattr(self.body_iterator, "aclose", None)
            if aclose is not None:
                await aclose()


class _CountRequests:
    """ASGI middleware counting HTTP requests by path and status."""

    def __init__(self, app: Any, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = {"code": 500}

        async def counting_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                if status["code"] == 429:
                    self.metrics.rejected.inc()
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            path = scope.get("path", "")
            known = path if path in _KNOWN_PATHS else "other"
            self.metrics.http_requests.labels(path=known, status=str(status["code"])).inc()


_KNOWN_PATHS = frozenset({"/v1/chat/completions", "/v1/models", "/healthz", "/metrics"})
