"""A LangSmith API stand-in on 127.0.0.1 that captures traced runs, for tests.

The real ``langsmith.Client`` (0.15.x) sends to it exactly as it would send to
the hosted service:

* ``GET /info``: tells the client to use the multipart ingestion endpoint and,
  when the ``zstandard`` package is importable, zstd-compressed multipart
  (``instance_flags.zstd_compression_enabled``), like the hosted service does.
  ``compression=False`` or ``use_multipart=False`` (-> ``POST /runs/batch``)
  select the other ingestion paths.
* ``POST /runs/multipart``: ``multipart/form-data`` with parts ``post.{id}``,
  ``patch.{id}``, ``{op}.{id}.inputs|outputs|events|extra|error|serialized``,
  ``attachment.{id}.{name}`` and ``feedback.{id}``; the body may be
  ``Content-Encoding: zstd`` (or gzip).
* ``POST /runs/batch``: ``{"post": [...], "patch": [...]}``.
* ``POST /runs`` and ``PATCH /runs/{id}``: the non-batched endpoints (used with
  ``Client(auto_batch_tracing=False)``).

Posts and patches are merged per run id into :attr:`LangSmithCaptureServer.runs`.

It also answers the reads of ``Client.list_runs(project_name=..., filter=...)`` from
the captured runs: ``GET /sessions?name=...`` (a project exists once a run was traced to
it; its id is derived from its name) and ``POST /runs/query`` (one page; ``session``,
``id``, ``run_type``, ``is_root``, ``parent_run``, ``trace``, ``error`` and ``limit``,
and a ``filter`` of LangSmith's query language restricted to ``and``, ``or``, ``not``,
``eq``, ``neq`` and ``has`` over ``name``, ``run_type``, ``id``, ``trace_id``,
``parent_run_id``, ``tags``, and ``metadata_key`` / ``metadata_value``: within one
``and``, ``eq(metadata_key, K)`` and ``eq(metadata_value, V)`` match a run whose
metadata ``K`` is ``V``, as LangSmith matches them). Anything else is answered 400.
The client uploads from background threads, so tests flush the client and then
wait with a bounded :meth:`LangSmithCaptureServer.wait_for`.
"""

from __future__ import annotations

import copy
import gzip
import importlib
import io
import json
import re
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from tests.support.openai_server import (
    LOOPBACK_HOST,
    JSONRequestHandler,
    LoopbackHTTPServer,
    RecordedRequest,
)

__all__ = [
    "LangSmithCaptureServer",
    "RunsPredicate",
    "UnsupportedQueryError",
    "parse_filter",
    "parse_multipart",
    "run_matches",
    "zstd_available",
]

RunsPredicate = Callable[[dict[str, dict[str, Any]]], bool]

# Fields every captured run has (None / empty when never sent).
_RUN_DEFAULTS: dict[str, Any] = {
    "id": None,
    "name": None,
    "run_type": None,
    "parent_run_id": None,
    "trace_id": None,
    "dotted_order": None,
    "session_name": None,
    "start_time": None,
    "end_time": None,
    "inputs": None,
    "outputs": None,
    "extra": None,
    "error": None,
    "tags": None,
    "events": None,
    "serialized": None,
}

_FIELD_PARTS = ("inputs", "outputs", "events", "extra", "error", "serialized")


def _zstd() -> Any | None:
    try:
        return importlib.import_module("zstandard")
    except ImportError:
        return None


def zstd_available() -> bool:
    """Whether zstd-compressed ingestion can be decoded (and will be used)."""
    return _zstd() is not None


def _decode_body(raw: bytes, encoding: str) -> bytes:
    encoding = encoding.strip().lower()
    if not encoding or encoding == "identity":
        return raw
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    if encoding == "zstd":
        zstandard = _zstd()
        if zstandard is None:
            raise ValueError("zstd body but zstandard is not installed")
        # Streamed frames carry no content size, so read them incrementally.
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw))
        out = io.BytesIO()
        while chunk := reader.read(1 << 16):
            out.write(chunk)
        return out.getvalue()
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _boundary(content_type: str) -> str:
    for param in content_type.split(";")[1:]:
        key, _, value = param.strip().partition("=")
        if key.lower() == "boundary":
            return value.strip('"')
    raise ValueError(f"no boundary in Content-Type {content_type!r}")


def parse_multipart(body: bytes, boundary: str) -> list[tuple[str, dict[str, str], bytes]]:
    """Split a ``multipart/form-data`` body into ``(name, headers, data)`` parts.

    Honours each part's ``Content-Length`` when present (the langsmith client
    sends one for its JSON parts), else scans for the next boundary.
    """
    delim = b"--" + boundary.encode()
    parts: list[tuple[str, dict[str, str], bytes]] = []
    pos = body.find(delim)
    while pos != -1:
        pos += len(delim)
        if body.startswith(b"--", pos):
            break
        if body.startswith(b"\r\n", pos):
            pos += 2
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end == -1:
            break
        headers: dict[str, str] = {}
        for line in body[pos:head_end].decode("utf-8", "replace").split("\r\n"):
            key, _, value = line.partition(":")
            if key:
                headers[key.strip().lower()] = value.strip()
        start = head_end + 4
        length = headers.get("content-length")
        if length is not None and length.isdigit():
            end = start + int(length)
            next_pos = body.find(delim, end)
        else:
            next_pos = body.find(b"\r\n" + delim, start)
            end = next_pos if next_pos != -1 else len(body)
            next_pos = body.find(delim, end)
        name = ""
        for param in headers.get("content-disposition", "").split(";")[1:]:
            key, _, value = param.strip().partition("=")
            if key == "name":
                name = value.strip('"')
        parts.append((name, headers, body[start:end]))
        pos = next_pos
    return parts


def _loads(data: bytes) -> Any:
    return json.loads(data) if data.strip() else None


def _merge_dict(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge_dict(out[key], value)
        else:
            out[key] = value
    return out


# --------------------------------------------------------------------------- run queries

#: The tenant of every project the server reports.
_TENANT_ID = "00000000-0000-4000-8000-000000000001"
_FILTER_TOKEN = re.compile(
    r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>[A-Za-z_]\w*)'
    r"|(?P<punct>[(),]))"
)
_FILTER_FUNCTIONS = ("and", "or", "not", "eq", "neq", "has")
_FILTER_FIELDS = ("name", "run_type", "id", "trace_id", "parent_run_id", "tags")
_METADATA_FIELDS = ("metadata_key", "metadata_value")


class UnsupportedQueryError(ValueError):
    """A run query the capture server does not implement (answered 400)."""


#: A parsed filter: ``(function, [arguments])``; an argument is a parsed filter, a field
#: name (``("field", name)``) or a literal value (``("value", v)``).
Filter = tuple[str, list[Any]]


def project_id(name: str) -> str:
    """The id the server gives the project (session) called ``name``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"langsmith-capture/{name}"))


def parse_filter(text: str) -> Filter:
    """Parse a LangSmith filter (the subset in the module docstring).

    Raises:
        UnsupportedQueryError: Syntax, functions or fields outside that subset.
    """
    tokens: list[tuple[str, Any]] = []
    pos = 0
    while pos < len(text.rstrip()):
        match = _FILTER_TOKEN.match(text, pos)
        if match is None:
            raise UnsupportedQueryError(f"cannot parse filter {text!r} at {pos}")
        kind = match.lastgroup or ""
        raw = match.group(kind)
        value: Any = raw
        if kind == "string":
            value = json.loads(raw)
        elif kind == "number":
            value = float(raw) if "." in raw else int(raw)
        tokens.append((kind, value))
        pos = match.end()
    tree, rest = _parse_call(tokens)
    if rest:
        raise UnsupportedQueryError(f"unexpected text after the filter {text!r}")
    return tree


def _parse_call(tokens: list[tuple[str, Any]]) -> tuple[Filter, list[tuple[str, Any]]]:
    if len(tokens) < 2 or tokens[0][0] != "word" or tokens[1] != ("punct", "("):
        raise UnsupportedQueryError(f"expected a function call, got {tokens[:2]!r}")
    function = str(tokens[0][1])
    if function not in _FILTER_FUNCTIONS:
        raise UnsupportedQueryError(f"unsupported filter function {function!r}")
    rest = tokens[2:]
    args: list[Any] = []
    while rest and rest[0] != ("punct", ")"):
        kind, value = rest[0]
        if kind == "word" and len(rest) > 1 and rest[1] == ("punct", "("):
            arg, rest = _parse_call(rest)
            args.append(arg)
        elif kind == "word":
            words = {"true": True, "false": False, "null": None}
            if value in words:
                args.append(("value", words[value]))
            elif value in _FILTER_FIELDS or value in _METADATA_FIELDS:
                args.append(("field", value))
            else:
                raise UnsupportedQueryError(f"unsupported filter field {value!r}")
            rest = rest[1:]
        elif kind in ("string", "number"):
            args.append(("value", value))
            rest = rest[1:]
        else:
            raise UnsupportedQueryError(f"unexpected {value!r} in the filter")
        if rest and rest[0] == ("punct", ","):
            rest = rest[1:]
    if not rest:
        raise UnsupportedQueryError("unclosed parenthesis in the filter")
    return (function, args), rest[1:]


def _metadata(run: dict[str, Any]) -> dict[str, Any]:
    extra = run.get("extra") or {}
    metadata = extra.get("metadata") if isinstance(extra, dict) else None
    return metadata if isinstance(metadata, dict) else {}


def _same(stored: Any, wanted: Any) -> bool:
    """Whether a stored value equals a filter's literal (numbers and text compared as text)."""
    if stored == wanted:
        return True
    if isinstance(stored, bool) or isinstance(wanted, bool) or stored is None or wanted is None:
        return False
    return str(stored) == str(wanted)


def _comparison(node: Filter) -> tuple[str, Any]:
    function, args = node
    fields = [a[1] for a in args if a[0] == "field"]
    values = [a[1] for a in args if a[0] == "value"]
    if len(args) != 2 or len(fields) != 1 or len(values) != 1:
        raise UnsupportedQueryError(f"{function}() takes a field and a value")
    return fields[0], values[0]


def run_matches(node: Filter, run: dict[str, Any]) -> bool:
    """Whether the captured ``run`` satisfies the parsed filter ``node``."""
    function, args = node
    if function in ("and", "or"):
        subs = [a for a in args if isinstance(a[0], str) and a[0] in _FILTER_FUNCTIONS]
        if len(subs) != len(args):
            raise UnsupportedQueryError(f"{function}() takes filters")
        if function == "or":
            return any(run_matches(s, run) for s in subs)
        # A metadata key and a metadata value compared in one and() bind to one entry.
        compared = [_comparison(s) for s in subs if s[0] == "eq"]
        keys = [v for f, v in compared if f == "metadata_key"]
        values = [v for f, v in compared if f == "metadata_value"]
        rest = subs
        if keys and values:
            if len(keys) > 1 or len(values) > 1:
                raise UnsupportedQueryError("one metadata key and value per and()")
            metadata = _metadata(run)
            if keys[0] not in metadata or not _same(metadata[keys[0]], values[0]):
                return False
            rest = [s for s in subs if s[0] != "eq" or _comparison(s)[0] not in _METADATA_FIELDS]
        return all(run_matches(s, run) for s in rest)
    if function == "not":
        if len(args) != 1:
            raise UnsupportedQueryError("not() takes one filter")
        return not run_matches(args[0], run)
    field, value = _comparison(node)
    if field == "metadata_key":
        found = value in _metadata(run)
        return found if function in ("eq", "has") else not found
    if field == "metadata_value":
        found = any(_same(v, value) for v in _metadata(run).values())
        return found if function in ("eq", "has") else not found
    stored = run.get(field)
    if function == "has":
        return isinstance(stored, list) and value in stored
    return _same(stored, value) if function == "eq" else not _same(stored, value)


def _query_runs(runs: list[dict[str, Any]], body: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the runs a ``POST /runs/query`` body selects, in start order."""
    known = {
        "session",
        "id",
        "run_type",
        "is_root",
        "parent_run",
        "trace",
        "error",
        "filter",
        "limit",
        "select",
        "cursor",
        "order",
    }
    unknown = sorted(k for k, v in body.items() if k not in known and v is not None)
    if unknown:
        raise UnsupportedQueryError(f"unsupported run query parameters {unknown}")
    tree = parse_filter(body["filter"]) if body.get("filter") else None
    sessions = {str(s) for s in body.get("session") or []}
    ids = {str(i) for i in body.get("id") or []}
    found = []
    for run in sorted(runs, key=lambda r: str(r.get("dotted_order") or r.get("start_time"))):
        if sessions and project_id(str(run.get("session_name"))) not in sessions:
            continue
        if ids and str(run.get("id")) not in ids:
            continue
        if body.get("run_type") and run.get("run_type") != body["run_type"]:
            continue
        if body.get("is_root") is not None and (run.get("parent_run_id") is None) != bool(
            body["is_root"]
        ):
            continue
        if body.get("parent_run") and str(run.get("parent_run_id")) != str(body["parent_run"]):
            continue
        if body.get("trace") and str(run.get("trace_id")) != str(body["trace"]):
            continue
        if body.get("error") is not None and (run.get("error") is not None) != bool(body["error"]):
            continue
        if tree is not None and not run_matches(tree, run):
            continue
        found.append(_as_stored(run))
    limit = body.get("limit")
    return found[: int(limit)] if limit is not None else found


def _as_stored(run: dict[str, Any]) -> dict[str, Any]:
    """A captured run as ``/runs/query`` returns it (with its project id and ancestors)."""
    out = {k: v for k, v in run.items() if k not in ("attachments", "feedback")}
    out["session_id"] = project_id(str(run.get("session_name")))
    dotted = str(run.get("dotted_order") or "")
    ancestors = [part[-36:] for part in dotted.split(".")[:-1] if len(part) >= 36]
    out["parent_run_ids"] = ancestors
    out["status"] = "error" if run.get("error") else "success"
    return out


class _LangSmithHandler(JSONRequestHandler):
    server: _LangSmithHTTPServer

    def _dispatch(self) -> None:
        owner = self.server.owner
        rec = self.record(owner.requests, owner.lock)
        path = self.path.split("?", 1)[0].rstrip("/")
        if path.startswith("/api/v1"):
            path = path[len("/api/v1") :]
        try:
            if self.command == "GET" and path == "/info":
                self.send_json(200, owner.info())
                return
            if self.command == "GET" and path == "/sessions":
                self.send_json(200, owner.projects(_query_params(self.path).get("name")))
                return
            if self.command == "POST" and path == "/runs/query":
                try:
                    runs = owner.query_runs(_loads(rec.raw) or {})
                except UnsupportedQueryError as exc:
                    self.send_json(400, {"detail": f"capture server: {exc}"})
                    return
                self.send_json(200, {"runs": runs, "cursors": {"next": None}})
                return
            is_ingest = (self.command == "POST" and path.startswith("/runs")) or (
                self.command == "PATCH" and path.startswith("/runs/")
            )
            if is_ingest and owner.ingest_status is not None:
                self.send_json(owner.ingest_status, {"detail": "ingestion failure (scripted)"})
                return
            if self.command == "POST" and path == "/runs/multipart":
                raw = _decode_body(rec.raw, rec.headers.get("content-encoding", ""))
                owner.ingest_multipart(raw, _boundary(rec.headers.get("content-type", "")))
                self.send_json(202, {})
            elif self.command == "POST" and path == "/runs/batch":
                raw = _decode_body(rec.raw, rec.headers.get("content-encoding", ""))
                batch = _loads(raw) or {}
                owner.ingest_ops(
                    [("post", r) for r in batch.get("post") or []]
                    + [("patch", r) for r in batch.get("patch") or []]
                )
                self.send_json(202, {})
            elif self.command == "POST" and path == "/runs":
                owner.ingest_ops([("post", _loads(rec.raw) or {})])
                self.send_json(202, {})
            elif self.command == "PATCH" and path.startswith("/runs/"):
                run = _loads(rec.raw) or {}
                run.setdefault("id", path[len("/runs/") :])
                owner.ingest_ops([("patch", run)])
                self.send_json(202, {})
            else:
                self.send_json(404, {"detail": f"Not found: {self.command} {self.path}"})
        except Exception as exc:  # report, don't kill the handler thread
            owner.errors.append(f"{self.command} {self.path}: {exc!r}")
            self.send_json(422, {"detail": f"capture server could not parse request: {exc!r}"})

    do_GET = _dispatch  # noqa: N815
    do_POST = _dispatch  # noqa: N815
    do_PATCH = _dispatch  # noqa: N815
    do_PUT = _dispatch  # noqa: N815
    do_DELETE = _dispatch  # noqa: N815


def _query_params(path: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return dict(parse_qsl(path.split("?", 1)[1])) if "?" in path else {}


class _LangSmithHTTPServer(LoopbackHTTPServer):
    def __init__(self, owner: LangSmithCaptureServer) -> None:
        self.owner = owner
        super().__init__(_LangSmithHandler, owner.errors)


class LangSmithCaptureServer:
    """Captures runs that the real ``langsmith.Client`` uploads.

    Args:
        use_multipart: Advertise the multipart endpoint (the hosted default);
            ``False`` makes the client use ``POST /runs/batch``.
        compression: Advertise zstd compression. ``None`` (default): when
            ``zstandard`` is importable, like the hosted service.
        info_overrides: Merged into the ``GET /info`` response.

    Attributes:
        runs: ``{run_id: run}`` with post and patch data merged; each run has at
            least the keys id, name, run_type, parent_run_id, trace_id,
            dotted_order, session_name, start_time, end_time, inputs, outputs,
            extra (``extra["metadata"]`` holds metadata), error, tags, events,
            serialized, plus ``attachments`` (``{name: bytes}``) and
            ``feedback`` (a list) when sent.
        operations: Every ``("post" | "patch", payload)`` in arrival order.
        requests: Every HTTP request received.
        errors: Requests the server failed to parse and unexpected handler
            errors (should stay empty).
        ingest_status: When set, ingestion endpoints answer with this status
            (e.g. 400) instead of capturing, to test tracing failures.
    """

    def __init__(
        self,
        *,
        use_multipart: bool = True,
        compression: bool | None = None,
        info_overrides: dict[str, Any] | None = None,
    ) -> None:
        self.use_multipart = use_multipart
        self.compression = zstd_available() if compression is None else compression
        if self.compression and not zstd_available():
            raise RuntimeError("compression=True needs the zstandard package")
        self.info_overrides = info_overrides or {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.operations: list[tuple[str, dict[str, Any]]] = []
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        self.ingest_status: int | None = None
        self.lock = threading.Lock()
        self._changed = threading.Condition(self.lock)
        self._httpd: _LangSmithHTTPServer | None = None

    # -- lifecycle

    def start(self) -> LangSmithCaptureServer:
        """Bind an ephemeral port on 127.0.0.1 and serve in a daemon thread."""
        if self._httpd is None:
            self._httpd = _LangSmithHTTPServer(self)
            self._httpd.start(name=f"langsmith-capture-{self._httpd.port}")
        return self

    def close(self) -> None:
        """Stop the server and close its connections."""
        if self._httpd is not None:
            self._httpd.stop()
            self._httpd = None

    def __enter__(self) -> LangSmithCaptureServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the value for ``LANGSMITH_ENDPOINT``."""
        if self._httpd is None:
            raise RuntimeError("server not started")
        return f"http://{LOOPBACK_HOST}:{self._httpd.port}"

    # -- protocol

    def info(self) -> dict[str, Any]:
        """The ``GET /info`` response."""
        info: dict[str, Any] = {
            "version": "0.12.0",
            "license_expiration_time": None,
            "batch_ingest_config": {
                "use_multipart_endpoint": self.use_multipart,
                "scale_up_qsize_trigger": 1000,
                "scale_up_nthreads_limit": 16,
                "scale_down_nempty_trigger": 4,
                "size_limit": 100,
                "size_limit_bytes": 20_971_520,
            },
            "instance_flags": {
                "zstd_compression_enabled": self.compression,
                "dataset_examples_multipart_enabled": True,
                "examples_multipart_enabled": True,
            },
        }
        return _merge_dict(info, self.info_overrides)

    def ingest_multipart(self, body: bytes, boundary: str) -> None:
        """Capture the runs of one (decompressed) multipart body."""
        ops: dict[tuple[str, str], dict[str, Any]] = {}
        attachments: list[tuple[str, str, bytes]] = []
        feedback: list[dict[str, Any]] = []
        for name, _headers, data in parse_multipart(body, boundary):
            pieces = name.split(".")
            if pieces[0] in ("post", "patch") and len(pieces) in (2, 3):
                op = ops.setdefault((pieces[0], pieces[1]), {"id": pieces[1]})
                if len(pieces) == 2:
                    op.update(_loads(data) or {})
                elif pieces[2] in _FIELD_PARTS:
                    op[pieces[2]] = _loads(data)
            elif pieces[0] == "attachment" and len(pieces) >= 3:
                attachments.append((pieces[1], ".".join(pieces[2:]), data))
            elif pieces[0] == "feedback" and len(pieces) == 2:
                feedback.append(_loads(data) or {})
            else:
                self.errors.append(f"unknown multipart part {name!r}")
        self.ingest_ops([(op_name, op) for (op_name, _), op in ops.items()])
        with self._changed:
            for run_id, att_name, data in attachments:
                run = self.runs.setdefault(run_id, {**_RUN_DEFAULTS, "id": run_id})
                run.setdefault("attachments", {})[att_name] = data
            for item in feedback:
                run_id = str(item.get("run_id"))
                run = self.runs.setdefault(run_id, {**_RUN_DEFAULTS, "id": run_id})
                run.setdefault("feedback", []).append(item)
            self._changed.notify_all()

    def ingest_ops(self, ops: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Merge ``("post" | "patch", run)`` operations into :attr:`runs`."""
        with self._changed:
            for op_name, payload in ops:
                self.operations.append((op_name, copy.deepcopy(payload)))
                run_id = str(payload.get("id"))
                run = self.runs.get(run_id)
                if run is None:
                    run = self.runs[run_id] = {**_RUN_DEFAULTS, "id": run_id}
                    existed = False
                else:
                    existed = True
                for key, value in payload.items():
                    if key == "id":
                        continue
                    if value is None and key in run:
                        continue  # patches send None for fields they don't change
                    if op_name == "post" and existed and run.get(key) is not None:
                        continue  # a late post never undoes a patch
                    if (
                        key == "extra"
                        and isinstance(value, dict)
                        and isinstance(run.get(key), dict)
                    ):
                        run[key] = _merge_dict(run[key], value)
                    else:
                        run[key] = value
                for key in ("id", "parent_run_id", "trace_id"):
                    if run.get(key) is not None:
                        run[key] = str(run[key])
            self._changed.notify_all()

    # -- reads (Client.list_runs)

    def projects(self, name: str | None) -> list[dict[str, Any]]:
        """The ``GET /sessions?name=`` response: the project once a run was traced to it."""
        with self.lock:
            names = {
                str(r.get("session_name")) for r in self.runs.values() if r.get("session_name")
            }
        return [
            {
                "id": project_id(n),
                "name": n,
                "tenant_id": _TENANT_ID,
                "start_time": "2024-01-01T00:00:00Z",
                "reference_dataset_id": None,
            }
            for n in sorted(names)
            if name is None or n == name
        ]

    def query_runs(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """The runs a ``POST /runs/query`` body selects (see the module docstring).

        Raises:
            UnsupportedQueryError: A parameter or filter the server does not implement.
        """
        return _query_runs(list(self.snapshot().values()), body)

    # -- inspection

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """A deep copy of :attr:`runs`."""
        with self.lock:
            return copy.deepcopy(self.runs)

    def wait_for(self, predicate: RunsPredicate, timeout: float = 5.0) -> dict[str, dict[str, Any]]:
        """Block until ``predicate(runs)`` holds; return that snapshot of the runs.

        Raises:
            TimeoutError: After ``timeout`` seconds, with a summary of the runs.
        """
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                snapshot = copy.deepcopy(self.runs)
                if predicate(snapshot):
                    return snapshot
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        summary = [
            f"{r.get('name')}[{r.get('run_type')}] id={rid} parent={r.get('parent_run_id')} "
            f"ended={r.get('end_time') is not None}"
            for rid, r in snapshot.items()
        ]
        raise TimeoutError(
            f"runs did not satisfy the predicate within {timeout}s; captured "
            f"{len(snapshot)} run(s): {summary}; errors: {self.errors}"
        )

    def wait_for_runs(
        self, names: Iterable[str] = (), *, count: int | None = None, timeout: float = 5.0
    ) -> dict[str, dict[str, Any]]:
        """Wait until runs with all ``names`` (and ``count`` runs in all) have ended."""
        wanted = set(names)

        def done(runs: dict[str, dict[str, Any]]) -> bool:
            ended = [r for r in runs.values() if r.get("end_time") is not None]
            if count is not None and len(ended) < count:
                return False
            return wanted <= {r.get("name") for r in ended}

        return self.wait_for(done, timeout)

    def runs_named(self, name: str) -> list[dict[str, Any]]:
        """Captured runs with this name, in start order."""
        with self.lock:
            found = [copy.deepcopy(r) for r in self.runs.values() if r.get("name") == name]
        return sorted(found, key=lambda r: str(r.get("dotted_order") or r.get("start_time")))

    def run_named(self, name: str) -> dict[str, Any]:
        """The single captured run with this name."""
        found = self.runs_named(name)
        if len(found) != 1:
            raise AssertionError(f"expected one run named {name!r}, found {len(found)}")
        return found[0]

    def children(self, run_id: str) -> list[dict[str, Any]]:
        """Runs whose ``parent_run_id`` is ``run_id``, in start order."""
        with self.lock:
            found = [
                copy.deepcopy(r) for r in self.runs.values() if r.get("parent_run_id") == run_id
            ]
        return sorted(found, key=lambda r: str(r.get("dotted_order") or r.get("start_time")))

    def reset(self) -> None:
        """Forget everything captured."""
        with self.lock:
            self.runs.clear()
            self.operations.clear()
            self.requests.clear()
            self.errors.clear()
