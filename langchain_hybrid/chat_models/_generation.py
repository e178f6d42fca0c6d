"""The local generation engine: one worker thread per loaded model, batched ``generate``.

Every request (a single invoke, a stream, or each prompt of a ``batch``) is queued
to the engine of its model. The worker takes the queued requests that share the
same sampling settings and runs them through one left-padded
``model.generate`` call. That makes the model safe under concurrent use (only the
worker touches it) and turns concurrent calls into batched ones.

Log-probs come from the same forward pass as generation: a logits processor keeps
each step's logits and a stopping criterion, which sees the token chosen from
them, records that token's log-prob (and the top-k alternatives), feeds the
streaming consumer, applies stop sequences, cancellation and deadlines per row.

With ``hidden_layer`` set, a forward hook on that decoder layer keeps, from the same
passes, each row's state at its last prompt token (sent at once to a streaming consumer)
and the mean of its states over the answer's tokens (see :mod:`langchain_hybrid.hidden_states`).

A request may carry a ``constraint`` (a grammar, see ``_constrained``): its row gets
its own matcher, a second logits processor after the capture masks the tokens the
grammar forbids in that row only, and the matcher follows the chosen tokens. The
log-probs recorded stay the model's raw ones (captured before the mask).
"""

from __future__ import annotations

import atexit
import functools
import queue
import threading
import time
from collections.abc import Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from langchain_hybrid._models import LoadedModel
from langchain_hybrid.chat_models._tokens import TokenBytes, Utf8Assembler
from langchain_hybrid.hidden_states import PREFIX_TOKENS, encode_vector
from langchain_hybrid.logprobs import TokenLogprob, TopLogprob


@dataclass(frozen=True)
class SamplingSettings:
    """Settings that must be equal for requests to share one ``generate`` call."""

    max_new_tokens: int
    temperature: float = 0.0
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    top_logprobs: int = 0
    hidden_layer: int | None = None


class RowConstraint(Protocol):
    """One row's constraint state (``_constrained.RowGrammar``)."""

    @property
    def active(self) -> bool:
        """Whether the row's next token is constrained."""

    def bitmask(self) -> bytes:
        """Return the allowed tokens, one bit each, 32 per little-endian int32."""

    def advance(self, token_id: int, text: str) -> None:
        """Follow the token the row chose; ``text`` is the row's text after it."""


class Constraint(Protocol):
    """A request's constraint on its output (``_constrained.Grammar``)."""

    def start(self) -> RowConstraint:
        """Return a fresh state for the row that generates the request."""


@dataclass
class GenerationResult:
    """What one request produced."""

    text: str
    logprobs: list[TokenLogprob]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    hidden: dict[str, Any] | None = None
    """Hidden-state features (``layer``, ``dim``, ``prompt``, ``answer_mean``), if asked for."""


@dataclass
class TextDelta:
    """A piece of streamed output: text, the log-prob entries of its tokens, and the end marker."""

    text: str
    logprobs: list[TokenLogprob]
    result: GenerationResult | None = None
    hidden: dict[str, Any] | None = None
    """The state before generation (``layer``, ``dim``, ``prompt``), on a delta of its own."""


@dataclass
class GenerationRequest:
    """One prompt to generate from, with its controls."""

    prompt_ids: list[int]
    settings: SamplingSettings
    stop: tuple[str, ...] = ()
    deadline: float | None = None
    batch_group: tuple[int, int] | None = None
    streaming: bool = False
    constraint: Constraint | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: GenerationResult | None = None
    error: BaseException | None = None
    deltas: queue.Queue[TextDelta | BaseException] = field(default_factory=queue.Queue)

    def wait(self) -> GenerationResult:
        """Block until the request is finished and return its result (or raise its error)."""
        self.done.wait()
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result

    def iter_deltas(self) -> Generator[TextDelta, None, None]:
        """Yield text deltas as tokens arrive; closing early cancels generation."""
        finished = False
        try:
            while True:
                item = self.deltas.get()
                if isinstance(item, BaseException):
                    finished = True
                    raise item
                yield item
                if item.result is not None:
                    finished = True
                    return
        finally:
            if not finished:
                self.cancel.set()


class _Row:
    """Decoding state of one request inside a running batch."""

    def __init__(self, request: GenerationRequest, engine: GenerationEngine) -> None:
        self.request = request
        self.engine = engine
        self.text = ""
        self.entries: list[TokenLogprob] = []
        self.starts: list[int] = []
        self.completion_tokens = 0
        self.emitted_tokens = 0
        self.emitted_chars = 0
        self.finish_reason: str | None = None
        self.assembler = Utf8Assembler()
        self.max_stop = max((len(s) for s in request.stop), default=0)
        self.hidden: dict[str, Any] | None = None
        #: The mean of the row's answer states so far (set when hidden states are read).
        self.answer_state: Callable[[], list[float] | None] | None = None

    @property
    def finished(self) -> bool:
        return self.finish_reason is not None

    def add_token(self, token_id: int, logprob: float, top: list[tuple[int, float]]) -> None:
        engine = self.engine
        self.completion_tokens += 1
        if token_id in engine.eos_ids:
            self._finish("stop")
            return
        if token_id in engine.hidden_ids:
            self._check_length()
            return
        data = engine.token_bytes(token_id)
        if not self.entries and engine.token_bytes.strips_leading_space and data.startswith(b" "):
            data = data[1:]
        piece = self.assembler.feed(data)
        self.starts.append(len(self.text))
        self.entries.append(
            TokenLogprob(
                token=data.decode("utf-8", errors="replace"),
                logprob=logprob,
                bytes=list(data),
                top_logprobs=[engine.top_entry(tid, lp) for tid, lp in top],
            )
        )
        before = len(self.text)
        self.text += piece
        if self.max_stop and self._apply_stop(before):
            return
        self._check_length()
        self._emit()

    def _apply_stop(self, before: int) -> bool:
        search_from = max(0, before - self.max_stop + 1)
        hits = [p for p in (self.text.find(s, search_from) for s in self.request.stop) if p >= 0]
        if not hits:
            return False
        cut = min(hits)
        self.text = self.text[:cut]
        keep = sum(1 for start in self.starts if start < cut)
        del self.entries[keep:]
        del self.starts[keep:]
        self._finish("stop")
        return True

    def _check_length(self) -> None:
        if self.completion_tokens >= self.request.settings.max_new_tokens:
            self._finish("length")

    def check_controls(self, now: float) -> None:
        if self.finished:
            return
        if self.request.cancel.is_set():
            self._finish("cancelled")
        elif self.request.deadline is not None and now >= self.request.deadline:
            self._finish("timeout")

    def _finish(self, reason: str) -> None:
        if self.finished:
            return
        tail = self.assembler.flush()
        if tail and reason != "stop":
            self.text += tail
        self.finish_reason = reason
        if self.answer_state is not None:
            self.set_answer_state(self.answer_state())
        self._emit()

    def _emit(self) -> None:
        """Send the tokens whose text can no longer become part of a stop sequence."""
        if not self.request.streaming:
            return
        if self.finished:
            safe_chars, safe_tokens = len(self.text), len(self.entries)
        else:
            safe_chars = len(self.text) - self._held_back()
            safe_tokens = self.emitted_tokens
            while safe_tokens < len(self.entries) and self._token_end(safe_tokens) <= safe_chars:
                safe_tokens += 1
            safe_chars = self._token_end(safe_tokens - 1) if safe_tokens else 0
        if safe_tokens == self.emitted_tokens and not self.finished:
            return
        text = self.text[self.emitted_chars : safe_chars]
        entries = self.entries[self.emitted_tokens : safe_tokens]
        self.emitted_chars, self.emitted_tokens = safe_chars, safe_tokens
        self.request.deltas.put(
            TextDelta(text=text, logprobs=entries, result=self.result() if self.finished else None)
        )

    def _token_end(self, index: int) -> int:
        return self.starts[index + 1] if index + 1 < len(self.starts) else len(self.text)

    def _held_back(self) -> int:
        """Length of the longest text suffix that could still start a stop sequence."""
        held = 0
        for stop in self.request.stop:
            for k in range(min(len(stop) - 1, len(self.text)), held, -1):
                if self.text.endswith(stop[:k]):
                    held = k
                    break
        return held

    def result(self) -> GenerationResult:
        return GenerationResult(
            text=self.text,
            logprobs=self.entries,
            finish_reason=self.finish_reason or "length",
            prompt_tokens=len(self.request.prompt_ids),
            completion_tokens=self.completion_tokens,
            hidden=self.hidden,
        )

    def set_prompt_state(self, layer: int, state: list[float]) -> None:
        """Keep the state at the last prompt token; a streaming consumer gets it at once."""
        self.hidden = {"layer": layer, "dim": len(state), "prompt": encode_vector(state)}
        if self.request.streaming:
            self.request.deltas.put(TextDelta(text="", logprobs=[], hidden=dict(self.hidden)))

    def set_prefix_state(self, state: list[float]) -> None:
        """Keep the state of the answer's prefix token; a streaming consumer gets it at once."""
        if self.hidden is None:
            return
        self.hidden["answer_prefix"] = encode_vector(state)
        if self.request.streaming:
            prefix = {"answer_prefix": self.hidden["answer_prefix"]}
            self.request.deltas.put(TextDelta(text="", logprobs=[], hidden=prefix))

    def set_answer_state(self, mean: list[float] | None) -> None:
        """Keep the mean state over the answer's tokens (None: no token was fed back)."""
        if self.hidden is not None and mean is not None:
            self.hidden["answer_mean"] = encode_vector(mean)


class GenerationEngine:
    """Serialises and batches all generation on one loaded model.

    Example:
        >>> from langchain_hybrid._models import ModelSpec, load_model  # doctest: +SKIP
        >>> engine = engine_for(load_model(ModelSpec()))  # doctest: +SKIP
        >>> settings = SamplingSettings(max_new_tokens=8)
        >>> req = GenerationRequest(prompt_ids=[1, 2, 3], settings=settings)  # doctest: +SKIP
        >>> engine.submit(req).wait().finish_reason  # doctest: +SKIP
        'length'
    """

    def __init__(
        self,
        loaded: LoadedModel,
        max_batch_size: int = 32,
        group_wait_s: float = 0.2,
        idle_exit_s: float = 0.5,
    ):
        self.loaded = loaded
        self.max_batch_size = max_batch_size
        self.group_wait_s = group_wait_s
        #: The worker ends after this long without work (the next request starts a new
        #: one). An idle thread that ran torch keeps its OpenMP thread pool, and with
        #: more pooled threads than cores libgomp stops spinning between operations:
        #: another engine's (or the loading thread's) idle pool halves the int8 decode
        #: speed on a 2-core CPU. Starting a thread costs well under a millisecond.
        self.idle_exit_s = idle_exit_s
        tokenizer = loaded.tokenizer
        self.token_bytes = TokenBytes(tokenizer)
        eos: set[int] = set()
        for source in (loaded.model.generation_config.eos_token_id, tokenizer.eos_token_id):
            if isinstance(source, int):
                eos.add(source)
            elif source is not None:
                eos.update(int(x) for x in source)
        self.eos_ids = frozenset(eos)
        unk = tokenizer.unk_token_id
        self.hidden_ids = frozenset(
            int(i) for i in tokenizer.all_special_ids if i != unk and i not in self.eos_ids
        )
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(eos)
        self._queue: list[GenerationRequest] = []
        self._running: list[GenerationRequest] = []
        self._cond = threading.Condition()
        self._worker: threading.Thread | None = None
        self._closed = False

    def top_entry(self, token_id: int, logprob: float) -> TopLogprob:
        """Build one ``top_logprobs`` entry."""
        data = self.token_bytes(token_id)
        return TopLogprob(
            token=data.decode("utf-8", errors="replace"), logprob=logprob, bytes=list(data)
        )

    def submit(self, request: GenerationRequest) -> GenerationRequest:
        """Queue a request; returns it so the caller can ``wait()`` or ``iter_deltas()``."""
        with self._cond:
            if self._closed:
                raise RuntimeError(
                    "The generation engine is shut down: the interpreter is exiting."
                )
            self._queue.append(request)
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._run_forever,
                    name=f"langchain-hybrid:{self.loaded.name}",
                    daemon=True,
                )
                self._worker.start()
            self._cond.notify_all()
        return request

    def _next_batch(self) -> list[GenerationRequest] | None:
        """Wait for queued requests; ``None`` once the engine is closed and nothing is left."""
        with self._cond:
            while not self._queue:
                if self._closed:
                    return None
                if not self._cond.wait(self.idle_exit_s) and not self._queue:
                    self._worker = None  # idle: end this worker; submit() starts another
                    return None
            first = self._queue[0]
            if first.batch_group is not None:
                deadline = time.monotonic() + self.group_wait_s
                while not self._closed:
                    arrived = sum(1 for r in self._queue if r.batch_group == first.batch_group)
                    remaining = deadline - time.monotonic()
                    if arrived >= min(first.batch_group[1], self.max_batch_size) or remaining <= 0:
                        break
                    self._cond.wait(remaining)
            batch = [r for r in self._queue if r.settings == first.settings][: self.max_batch_size]
            for request in batch:
                self._queue.remove(request)
            self._running = batch
            return batch

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the engine: cancel queued and running requests and wait for the worker to end.

        Running requests end with ``finish_reason="cancelled"`` within one token and
        queued ones at once; an idle worker is woken and returns immediately. Later
        ``submit`` calls raise ``RuntimeError``.

        Example:
            >>> engine = engine_for(load_model(ModelSpec()))  # doctest: +SKIP
            >>> engine.shutdown()  # doctest: +SKIP
            >>> engine.worker_alive  # doctest: +SKIP
            False
        """
        with self._cond:
            self._closed = True
            for request in self._queue + self._running:
                request.cancel.set()
            worker = self._worker
            self._cond.notify_all()
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)

    @property
    def worker_alive(self) -> bool:
        """Whether a worker thread is running (it starts with a request, ends when idle)."""
        worker = self._worker
        return worker is not None and worker.is_alive()

    def _run_forever(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            try:
                self._run_batch(batch)
            except BaseException as exc:  # noqa: BLE001 - delivered to every waiting caller
                for request in batch:
                    if not request.done.is_set():
                        request.error = exc
                        request.deltas.put(exc)
                        request.done.set()
            finally:
                with self._cond:
                    self._running = []

    def _run_batch(self, batch: list[GenerationRequest]) -> None:
        live = [r for r in batch if not r.cancel.is_set()]
        for request in batch:
            if request.cancel.is_set():
                row = _Row(request, self)
                row.check_controls(time.monotonic())
                self._deliver(row)
        if not live:
            return
        import torch
        from transformers import LogitsProcessor, StoppingCriteria

        rows = [_Row(r, self) for r in live]
        settings = live[0].settings
        width = max(len(r.prompt_ids) for r in live)
        ids = [[self.pad_id] * (width - len(r.prompt_ids)) + r.prompt_ids for r in live]
        mask = [[0] * (width - len(r.prompt_ids)) + [1] * len(r.prompt_ids) for r in live]
        device = self.loaded.device
        input_ids = torch.tensor(ids, dtype=torch.long, device=device)
        attention_mask = torch.tensor(mask, dtype=torch.long, device=device)
        k = settings.top_logprobs

        class Capture(LogitsProcessor):
            """Keep the step's logits (what the token is chosen from)."""

            last: Any = None

            def __call__(self, input_ids: Any, scores: Any) -> Any:
                self.last = scores
                return scores

        capture = Capture()
        processors: list[Any] = [capture]
        states = [r.constraint.start() if r.constraint is not None else None for r in live]
        if any(state is not None for state in states):
            from langchain_hybrid.chat_models._constrained import TokenMasks

            processors.append(TokenMasks(states, lambda i: rows[i].finished))

        class Record(StoppingCriteria):
            """Record the chosen tokens with their log-probs; stop rows that are done."""

            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                logprobs = torch.log_softmax(capture.last.float(), dim=-1)
                chosen = input_ids[:, -1]
                chosen_lp = logprobs.gather(1, chosen[:, None]).squeeze(1).tolist()
                chosen_ids = chosen.tolist()
                if k:
                    top = torch.topk(logprobs, k, dim=-1)
                    top_ids, top_lps = top.indices.tolist(), top.values.tolist()
                now = time.monotonic()
                for i, row in enumerate(rows):
                    if row.finished:
                        continue
                    pairs = list(zip(top_ids[i], top_lps[i], strict=True)) if k else []
                    row.add_token(chosen_ids[i], chosen_lp[i], pairs)
                    state = states[i]
                    if state is not None:
                        state.advance(chosen_ids[i], row.text)
                    row.check_controls(now)
                return torch.tensor([row.finished for row in rows], device=input_ids.device)

        hidden = _HiddenStates(rows, settings.hidden_layer) if settings.hidden_layer else None
        sampling = settings.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": sampling,
            "temperature": settings.temperature if sampling else None,
            "top_p": settings.top_p if sampling else None,
            "top_k": settings.top_k if sampling else None,
            "pad_token_id": self.pad_id,
            "eos_token_id": sorted(self.eos_ids),
        }
        if settings.seed is not None:
            torch.manual_seed(settings.seed)
        with torch.inference_mode(), _hooked(self.loaded.model, hidden):
            self.loaded.model.generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                logits_processor=processors,
                stopping_criteria=[Record()],
                **kwargs,
            )
        for row in rows:
            if not row.finished:
                row.check_controls(time.monotonic())
                if not row.finished:
                    row._finish("length")
            self._deliver(row)

    @staticmethod
    def _deliver(row: _Row) -> None:
        row.request.result = row.result()
        row.request.done.set()


def decoder_layers(model: Any) -> Any:
    """Return the list of a causal LM's decoder layers (Llama, Qwen, Mistral, GPT-2 style).

    Raises ``ValueError`` when the model keeps them elsewhere.
    """
    for path in ("model.layers", "transformer.h", "gpt_neox.layers", "model.decoder.layers"):
        target = model
        for name in path.split("."):
            target = getattr(target, name, None)
        if target is not None:
            return target
    raise ValueError(
        f"cannot find the decoder layers of {type(model).__name__} for hidden-state features"
    )


class _HiddenStates:
    """A forward hook on one decoder layer: each row's prompt state and answer mean."""

    def __init__(self, rows: list[_Row], layer: int) -> None:
        self.rows, self.layer = rows, layer
        self.calls = 0
        self.sums: Any = None
        self.counts: Any = None
        for i, row in enumerate(rows):
            row.answer_state = functools.partial(self.mean, i)

    def __call__(self, module: Any, inputs: Any, output: Any) -> None:
        import torch

        states = (output[0] if isinstance(output, tuple) else output)[:, -1, :].float()
        if self.calls == 0:  # the prefill: the last prompt token (prompts are left-padded)
            for row, state in zip(self.rows, states.tolist(), strict=True):
                row.set_prompt_state(self.layer, state)
            self.sums = torch.zeros_like(states)
            self.counts = torch.zeros(states.shape[0], device=states.device)
        else:  # a decode step: the state of the token the row chose last
            live = torch.tensor([not r.finished for r in self.rows], device=states.device)
            self.sums += states * live[:, None]
            self.counts += live
            for i, row in enumerate(self.rows):
                if live[i] and int(self.counts[i]) == PREFIX_TOKENS:
                    row.set_prefix_state(states[i].tolist())
        self.calls += 1

    def mean(self, row: int) -> list[float] | None:
        """Return the mean of a row's answer states so far (None: no token fed back yet)."""
        if self.sums is None or not self.counts[row]:
            return None
        return (self.sums[row] / self.counts[row]).tolist()  # type: ignore[no-any-return]


@contextmanager
def _hooked(model: Any, hidden: _HiddenStates | None) -> Generator[None, None, None]:
    """Run with the hidden-state hook on its layer, when there is one."""
    if hidden is None:
        yield
        return
    handle = decoder_layers(model)[hidden.layer].register_forward_hook(hidden)
    try:
        yield
    finally:
        handle.remove()


_ENGINES: dict[int, GenerationEngine] = {}
_ENGINES_LOCK = threading.Lock()


def engine_for(loaded: LoadedModel) -> GenerationEngine:
    """Return the single engine of a loaded model, creating it on first use."""
    with _ENGINES_LOCK:
        engine = _ENGINES.get(id(loaded))
        if engine is None:
            engine = GenerationEngine(loaded)
            _ENGINES[id(loaded)] = engine
        return engine


@atexit.register
def _shutdown_engines() -> None:
    """Stop generation cleanly before the interpreter tears down torch (streams left open)."""
    with _ENGINES_LOCK:
        engines = list(_ENGINES.values())
    for engine in engines:
        engine.shutdown()
