"""The ``chat``, ``serve`` and ``models`` commands: answer with a model, list the cached ones."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

from langchain_hybrid.cli.base import PROG, Command, CommandAdder, CommandError
from langchain_hybrid.cli.options import (
    add_generation_options,
    add_model_options,
    build_from_factory,
    build_local_model,
    positive_int,
)
from langchain_hybrid.errors import LangChainHybridError


def _add_answering_model_options(parser: argparse.ArgumentParser) -> None:
    """Add the options that choose the model a command answers with (``chat``, ``serve``)."""
    g = parser.add_argument_group("model (default: ChatHybrid of the embedded model and gpt-4o)")
    add_model_options(g)
    add_generation_options(
        g,
        max_tokens=256,
        max_tokens_help="local token limit per answer (default 256)",
        top_logprobs=0,
        top_logprobs_help="alternatives per token the local model reports (default 0; a policy "
        "that reads the top-1/top-2 margin asks for what it needs)",
    )
    g.add_argument("--policy", metavar="FILE", help="routing policy JSON (from calibrate)")
    g.add_argument(
        "--cloud-model",
        default="gpt-4o",
        metavar="M",
        help="the cloud model (default gpt-4o); the key is OPENAI_API_KEY and the endpoint "
        "OPENAI_BASE_URL (any OpenAI-compatible one)",
    )
    g.add_argument(
        "--local-only",
        action="store_true",
        help="answer with the local model alone: no routing, nothing leaves the machine "
        "(with serve: a local tier for other routers). Needed when OPENAI_API_KEY is unset",
    )
    g.add_argument(
        "--factory",
        metavar="MODULE:CALLABLE",
        help="a Python callable returning the chat model to use instead (any BaseChatModel)",
    )


def _chat_model(args: argparse.Namespace) -> Any:
    """Return the chat model of ``chat`` and ``serve``: ``--factory``, local-only or hybrid.

    Without ``OPENAI_API_KEY`` the command refuses to start unless ``--local-only`` says
    that answering locally alone is intended.
    """
    if args.factory:
        return build_from_factory(args, "--factory")
    if not args.local_only and not os.environ.get("OPENAI_API_KEY"):
        raise CommandError(
            "OPENAI_API_KEY is not set, so the cloud tier cannot answer. Set it (and "
            "OPENAI_BASE_URL for another OpenAI-compatible endpoint), or pass --local-only "
            "to answer with the local model alone (nothing escalates)"
        )
    local = build_local_model(args, max_tokens=args.max_tokens, top_logprobs=args.top_logprobs)
    if args.local_only:
        print(
            f"{PROG}: WARNING: --local-only: every answer comes from the local model "
            f"{local.model_name}; nothing is routed or escalated.",
            file=sys.stderr,
        )
        return local
    from langchain_openai import ChatOpenAI

    from langchain_hybrid.chat_models.hybrid import ChatHybrid
    from langchain_hybrid.routing.policy import RoutingPolicy

    policy = RoutingPolicy.load(args.policy) if args.policy else RoutingPolicy()
    return ChatHybrid(local=local, cloud=ChatOpenAI(model=args.cloud_model), policy=policy)


def describe_decision(decision: Any) -> str:
    """Return the one line ``chat`` prints under each answer.

    Example:
        >>> describe_decision({"tier": "cloud", "reason": "low_confidence",
        ...                    "confidence": -1.234, "threshold": -0.6, "degraded": False})
        '[cloud | low_confidence | confidence -1.23 < threshold -0.60]'
        >>> describe_decision(None)
        '[local model | not routed]'
    """
    if not isinstance(decision, dict):
        return "[local model | not routed]"
    parts = [str(decision.get("tier")), str(decision.get("reason"))]
    confidence, threshold = decision.get("confidence"), decision.get("threshold")
    if confidence is not None and threshold is not None:
        sign = ">=" if confidence >= threshold else "<"
        parts.append(f"confidence {confidence:.2f} {sign} threshold {threshold:.2f}")
    elif confidence is not None:
        parts.append(f"confidence {confidence:.2f}")
    if decision.get("degraded"):
        parts.append("degraded: the cloud failed")
    return "[" + " | ".join(parts) + "]"


def _typed_lines() -> Iterator[str]:
    """Yield the lines of standard input: prompted for on a terminal, else as they come."""
    interactive = sys.stdin.isatty()
    if interactive:
        print("langchain-hybrid chat: /reset starts over, /quit leaves.")
    while True:
        if interactive:
            try:
                line = input("you> ")
            except EOFError:
                print()
                return
        else:
            raw = sys.stdin.readline()
            if not raw:
                return
            line = raw.rstrip("\n")
        yield line


def run_chat(args: argparse.Namespace) -> int:
    """Run ``chat`` with parsed arguments; returns the exit status."""
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

    model = _chat_model(args)
    history: list[BaseMessage] = []
    for line in _typed_lines():
        text = line.strip()
        if not text:
            continue
        if text in ("/quit", "/exit"):
            break
        if text == "/reset":
            history.clear()
            continue
        history.append(HumanMessage(text))
        whole: Any = None
        try:
            for piece in model.stream(history):
                print(piece.text, end="", flush=True)
                whole = piece if whole is None else whole + piece
        except LangChainHybridError as e:
            history.pop()
            print(f"\n{PROG} chat: error: {e}", file=sys.stderr)
            continue
        print()
        answer = whole.text if whole is not None else ""
        print(describe_decision(whole.response_metadata.get("routing") if whole else None))
        history.append(AIMessage(answer))
    return 0


_CHAT_HELP = f"""
chat in the terminal; each answer shows its tier, reason and confidence

Talk to ChatHybrid in the terminal. Each line you type is sent with the conversation so far;
the answer streams as it arrives, followed by how it was routed: the tier, the reason and
the confidence against the threshold. Type /reset to start over and /quit (or Ctrl-D) to
leave. Lines are read from standard input, so a file or pipe works too.

examples:
  {PROG} chat
  {PROG} chat --policy policy.json --cloud-model gpt-4o-mini
  echo 'What is the capital of France?' | {PROG} chat --local-only
"""

#: ``chat``: an interactive conversation that shows how each answer was routed.
add_chat_command = Command("chat", _CHAT_HELP, _add_answering_model_options, run_chat)


def _add_serve_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``serve``: the server's, then the model's."""
    net = parser.add_argument_group("server")
    net.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    net.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    net.add_argument(
        "--model-name",
        default="langchain-hybrid",
        metavar="NAME",
        help="the model id clients send and /v1/models lists (default langchain-hybrid)",
    )
    net.add_argument(
        "--api-key",
        action="append",
        default=[],
        metavar="KEY",
        help="accept 'Authorization: Bearer KEY' (repeatable; also LANGCHAIN_HYBRID_API_KEYS, "
        "comma-separated); without any key the server needs none",
    )
    net.add_argument(
        "--max-concurrency",
        type=positive_int,
        default=16,
        metavar="N",
        help="requests answered at once, the largest local batch (default 16)",
    )
    net.add_argument(
        "--max-queue",
        type=int,
        default=64,
        metavar="N",
        help="requests waiting for a slot before 429 (default 64)",
    )
    net.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=1_000_000,
        metavar="B",
        help="largest request body (default 1000000; 413 beyond)",
    )
    net.add_argument("--log-level", default="info", help="uvicorn log level (default info)")
    _add_answering_model_options(parser)


def run_serve(args: argparse.Namespace) -> int:
    """Run ``serve`` with parsed arguments until interrupted; returns the exit status."""
    try:
        from langchain_hybrid.server import ServerSettings, create_app, serve
    except ImportError as e:
        raise CommandError(str(e)) from e
    settings = ServerSettings.from_env(
        model_name=args.model_name,
        api_keys=args.api_key,
        max_concurrency=args.max_concurrency,
        max_queue=args.max_queue,
        max_body_bytes=args.max_body_bytes,
    )
    model = _chat_model(args)
    if args.host not in ("127.0.0.1", "localhost", "::1") and not settings.auth_required:
        print(
            f"{PROG}: WARNING: listening on {args.host} without API keys: anyone who can "
            "reach it can spend your cloud budget (set --api-key or LANGCHAIN_HYBRID_API_KEYS)",
            file=sys.stderr,
        )
    print(f"{PROG}: serving {settings.model_name!r} at http://{args.host}:{args.port}/v1")
    sys.stdout.flush()
    serve(create_app(model, settings), host=args.host, port=args.port, log_level=args.log_level)
    return 0


_SERVE_HELP = f"""
serve ChatHybrid (or the local model alone) as an OpenAI-compatible API

Start an OpenAI-compatible HTTP server: POST /v1/chat/completions (JSON and streaming),
GET /v1/models, GET /healthz and GET /metrics (Prometheus). Any OpenAI client works against
it; each answer carries its routing decision in the 'hybrid' field and the x-hybrid-tier,
x-hybrid-reason and x-hybrid-confidence headers. Concurrent requests are batched on the
local model; past --max-concurrency running and --max-queue waiting requests the server
answers 429 with Retry-After. With --local-only it serves the local model alone, as a
local tier for other routers. Needs the 'server' extra.

examples:
  OPENAI_API_KEY=sk-... {PROG} serve --port 8000 --policy policy.json
  {PROG} serve --local-only --model-name smollm2 --port 8001
  LANGCHAIN_HYBRID_API_KEYS=key1,key2 {PROG} serve --host 0.0.0.0
"""

#: ``serve``: the OpenAI-compatible HTTP server.
add_serve_command = Command("serve", _SERVE_HELP, _add_serve_options, run_serve)


def _add_models_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``models``."""
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run_models(args: argparse.Namespace) -> int:
    """Run ``models`` with parsed arguments; returns the exit status."""
    from langchain_hybrid._models import cache_dir, cached_models

    models = cached_models()
    if args.json:
        rows = [
            {"name": m.name, "path": str(m.path), "size_bytes": m.size_bytes, "source": m.source}
            for m in models
        ]
        print(json.dumps({"cache": str(cache_dir()), "models": rows}, indent=2))
        return 0
    print(f"cache: {cache_dir()}")
    if not models:
        print("no models cached yet (the first ChatTransformers() converts the embedded model)")
        return 0
    for m in models:
        print(f"{m.name}  {m.size_bytes / 1e6:.0f} MB  {m.path}  (from {m.source})")
    total = sum(m.size_bytes for m in models)
    print(f"{len(models)} model(s), {total / 1e6:.0f} MB in all")
    return 0


_MODELS_HELP = """
list the local models converted and cached, their sizes and where they are

List the local models in the cache (converted once from their GGUF file to safetensors on
first use), with their size on disk, folder and source. The cache is
$LANGCHAIN_HYBRID_CACHE, else $XDG_CACHE_HOME/langchain-hybrid (~/.cache/langchain-hybrid).
"""

#: ``models``: the converted local models in the cache.
add_models_command = Command("models", _MODELS_HELP, _add_models_options, run_models)


#: This group's commands, in the order ``langchain-hybrid --help`` lists them.
COMMANDS: list[CommandAdder] = [add_chat_command, add_serve_command, add_models_command]
