"""A scripted OpenAI-compatible cloud on 127.0.0.1, so the examples run offline.

``ScriptedCloud(reply)`` serves ``POST .../chat/completions`` (non-streaming) on a free
loopback port; ``reply(body)`` gets the request's JSON and returns the answer: a string,
or ``{"tool_calls": [{"name": ..., "arguments": {...}}]}``. Responses are built and
checked with the ``openai`` package's own types, with one log-prob per word when the
request asks for log-probs. Point ``ChatOpenAI(base_url=cloud.base_url, api_key="none")``
at it.

    with ScriptedCloud(lambda body: "Paris") as cloud:
        ChatOpenAI(model="gpt-4o", base_url=cloud.base_url, api_key="none").invoke("Hi")
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from openai.types.chat import ChatCompletion

Reply = Callable[[dict[str, Any]], "str | dict[str, Any]"]


def _logprobs(text: str) -> dict[str, Any]:
    tokens = re.findall(r"\s*\S+", text) or [text]
    return {
        "content": [
            {"token": t, "logprob": -0.01, "bytes": list(t.encode()), "top_logprobs": []}
            for t in tokens
        ]
    }


def completion(body: dict[str, Any], answer: str | dict[str, Any]) -> dict[str, Any]:
    """Return a chat completion (as JSON data) answering ``body`` with ``answer``."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if isinstance(answer, str):
        message["content"], finish = answer, "stop"
    else:
        message["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in answer["tool_calls"]
        ]
        finish = "tool_calls"
    text = message["content"] or ""
    choice = {"index": 0, "message": message, "finish_reason": finish, "logprobs": None}
    if body.get("logprobs") and text:
        choice["logprobs"] = _logprobs(text)
    words = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    data = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion",
        "created": 0,
        "model": body.get("model", "gpt-4o"),
        "choices": [choice],
        "usage": {
            "prompt_tokens": words,
            "completion_tokens": len(text.split()) or 1,
            "total_tokens": words + (len(text.split()) or 1),
        },
    }
    return ChatCompletion.model_validate(data).model_dump(mode="json", exclude_none=True)


class ScriptedCloud:
    """An OpenAI-compatible chat endpoint on 127.0.0.1 answering with ``reply(body)``."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.requests: list[dict[str, Any]] = []
        cloud = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                cloud.requests.append(body)
                payload = json.dumps(completion(body, cloud.reply(body))).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The ``base_url`` to give ``ChatOpenAI``."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> ScriptedCloud:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
