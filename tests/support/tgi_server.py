"""A Text Generation Inference (TGI) stand-in on 127.0.0.1, for tests.

Serves the two routes ``huggingface_hub.InferenceClient`` (what langchain-huggingface's
``HuggingFaceEndpoint`` and ``ChatHuggingFace`` use) calls on a TGI endpoint:

* ``POST /`` and ``POST /generate``: ``{"inputs", "parameters": {"details", "top_n_tokens",
  ...}}`` -> ``{"generated_text", "details": {"finish_reason", "generated_tokens", "seed",
  "prefill", "tokens": [{id, text, logprob, special}], "top_tokens": [[...]]}}`` as TGI does
  (``details`` only when asked for);
* ``POST /v1/chat/completions``: TGI's OpenAI-compatible Messages API, with ``logprobs``
  (``{"content": [{token, logprob, top_logprobs}]}``, no ``bytes``) when asked for.

Every answer is ``reply`` split into ``tokens`` with ``logprobs``; requests are recorded.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.support.openai_server import JSONRequestHandler, LoopbackHTTPServer, RecordedRequest

__all__ = ["FakeTGIServer"]


@dataclass
class FakeTGIServer:
    """A started-on-demand fake TGI; use as a context manager."""

    tokens: list[str] = field(default_factory=lambda: ["Paris", " is", " the", " capital", "."])
    logprobs: list[float] = field(default_factory=lambda: [-0.05, -0.2, -0.1, -0.3, -0.02])
    model_id: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    requests: list[RecordedRequest] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        self._server: LoopbackHTTPServer | None = None

    def __enter__(self) -> FakeTGIServer:
        owner = self

        class Handler(JSONRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                rec = self.record(owner.requests, owner.lock)
                route = rec.path.split("?", 1)[0].rstrip("/")
                if route in ("", "/generate"):
                    self.send_json(200, owner.generate(rec.body or {}))
                elif route == "/v1/chat/completions" and (rec.body or {}).get("stream"):
                    events = b"".join(
                        b"data: " + json.dumps(chunk).encode() + b"\n\n"
                        for chunk in owner.chat_chunks(rec.body or {})
                    )
                    self.send_bytes(
                        200, events + b"data: [DONE]\n\n", {"Content-Type": "text/event-stream"}
                    )
                elif route == "/v1/chat/completions":
                    self.send_json(200, owner.chat(rec.body or {}))
                else:
                    self.send_json(404, {"error": f"unknown route {rec.path}"})

            def do_GET(self) -> None:  # noqa: N802
                self.record(owner.requests, owner.lock)
                self.send_json(200, {"model_id": owner.model_id, "version": "fake"})

        self._server = LoopbackHTTPServer(Handler, self.errors)
        self._server.start("fake-tgi")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    @property
    def url(self) -> str:
        """The endpoint's root URL (what ``HuggingFaceEndpoint(endpoint_url=...)`` takes)."""
        assert self._server is not None, "use the server as a context manager"
        return f"http://127.0.0.1:{self._server.port}"

    def _token(self, i: int, text: str, logprob: float) -> dict[str, Any]:
        return {"id": 100 + i, "text": text, "logprob": logprob, "special": False}

    def _alternatives(self, i: int, n: int) -> list[dict[str, Any]]:
        best = self._token(i, self.tokens[i], self.logprobs[i])
        others = [self._token(900 + k, f" alt{k}", self.logprobs[i] - 1.0 - k) for k in range(n)]
        return [best, *others][:n]

    def generate(self, body: dict[str, Any]) -> Any:
        """TGI's ``/generate`` answer."""
        params = body.get("parameters") or {}
        out: dict[str, Any] = {"generated_text": "".join(self.tokens)}
        if params.get("details"):
            n = int(params.get("top_n_tokens") or 0)
            eos = {"id": 2, "text": "<|im_end|>", "logprob": -0.01, "special": True}
            details: dict[str, Any] = {
                "finish_reason": "eos_token",
                "generated_tokens": len(self.tokens) + 1,
                "seed": None,
                "prefill": [],
                "tokens": [
                    *(self._token(i, t, lp) for i, (t, lp) in enumerate(self._pairs())),
                    eos,
                ],
            }
            if n:
                details["top_tokens"] = [
                    *(self._alternatives(i, n) for i in range(len(self.tokens))),
                    [eos],
                ]
            out["details"] = details
        return [out] if isinstance(body.get("inputs"), list) else out

    def _pairs(self) -> list[tuple[str, float]]:
        return list(zip(self.tokens, self.logprobs, strict=True))

    def _chat_logprobs(self, body: dict[str, Any], indexes: range) -> dict[str, Any] | None:
        if not body.get("logprobs"):
            return None
        n = int(body.get("top_logprobs") or 0)
        return {
            "content": [
                {
                    "token": self.tokens[i],
                    "logprob": self.logprobs[i],
                    "top_logprobs": [
                        {"token": a["text"], "logprob": a["logprob"]}
                        for a in self._alternatives(i, n)
                    ],
                }
                for i in indexes
            ]
        }

    def chat_chunks(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """TGI's streamed ``/v1/chat/completions`` answer: one chunk per token."""
        chunks = []
        for i, token in enumerate(self.tokens):
            last = i == len(self.tokens) - 1
            chunks.append(
                {
                    "object": "chat.completion.chunk",
                    "id": "",
                    "created": int(time.time()),
                    "model": self.model_id,
                    "system_fingerprint": "fake-tgi",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"role": "assistant", "content": token},
                            "logprobs": self._chat_logprobs(body, range(i, i + 1)),
                            "finish_reason": "stop" if last else None,
                        }
                    ],
                }
            )
        return chunks

    def chat(self, body: dict[str, Any]) -> dict[str, Any]:
        """TGI's OpenAI-compatible ``/v1/chat/completions`` answer."""
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": "".join(self.tokens)},
            "logprobs": self._chat_logprobs(body, range(len(self.tokens))),
            "finish_reason": "stop",
        }
        return {
            "object": "chat.completion",
            "id": "",
            "created": int(time.time()),
            "model": self.model_id,
            "system_fingerprint": "fake-tgi",
            "choices": [choice],
            "usage": {
                "prompt_tokens": 12,
                "completion_tokens": len(self.tokens),
                "total_tokens": 12 + len(self.tokens),
            },
        }
