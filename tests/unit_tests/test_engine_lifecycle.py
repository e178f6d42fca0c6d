"""The generation engine's worker thread: started on demand, stopped by shutdown.

A stand-in model is enough here: requests cancelled before they run are answered
without touching the model, so no weights (and not even torch) are needed.
"""

import threading
import time
from types import SimpleNamespace

import pytest

from langchain_hybrid._models import LoadedModel
from langchain_hybrid.chat_models._generation import (
    GenerationEngine,
    GenerationRequest,
    SamplingSettings,
)


def _engine() -> GenerationEngine:
    tokenizer = SimpleNamespace(
        eos_token_id=2, pad_token_id=None, unk_token_id=None, all_special_ids=[2]
    )
    model = SimpleNamespace(generation_config=SimpleNamespace(eos_token_id=2))
    loaded = LoadedModel(name="stand-in", model=model, tokenizer=tokenizer, device="cpu", source="")
    return GenerationEngine(loaded)


def _cancelled_request(
    *, batch_group: tuple[int, int] | None = None, streaming: bool = False
) -> GenerationRequest:
    request = GenerationRequest(
        prompt_ids=[1, 5, 7],
        settings=SamplingSettings(max_new_tokens=4),
        batch_group=batch_group,
        streaming=streaming,
    )
    request.cancel.set()
    return request


def test_worker_starts_on_first_request_and_stays_for_the_next() -> None:
    engine = _engine()
    assert not engine.worker_alive
    assert engine.submit(_cancelled_request()).wait().finish_reason == "cancelled"
    assert engine.worker_alive
    assert engine.submit(_cancelled_request()).wait().finish_reason == "cancelled"
    engine.shutdown()


def test_idle_worker_ends_and_the_next_request_starts_another() -> None:
    engine = _engine()
    engine.idle_exit_s = 0.05
    engine.submit(_cancelled_request()).wait()
    deadline = time.monotonic() + 5
    while engine.worker_alive and time.monotonic() < deadline:
        time.sleep(0.01)
    # Ended when idle: its thread (and the OpenMP pool torch gave it) is gone.
    assert not engine.worker_alive
    assert not [t for t in threading.enumerate() if t.name == "langchain-hybrid:stand-in"]
    assert engine.submit(_cancelled_request()).wait().finish_reason == "cancelled"
    engine.shutdown()


def test_shutdown_stops_an_idle_worker() -> None:
    engine = _engine()
    engine.submit(_cancelled_request()).wait()
    assert engine.worker_alive  # idle, waiting for work
    engine.shutdown()
    assert not engine.worker_alive


def test_shutdown_while_a_batch_group_gathers() -> None:
    engine = _engine()
    engine.group_wait_s = 60.0  # the group of 8 never completes; shutdown must not wait for it
    request = engine.submit(_cancelled_request(batch_group=(1, 8)))
    engine.shutdown()
    assert request.wait().finish_reason == "cancelled"
    assert not engine.worker_alive


def test_streamed_request_ends_with_a_final_delta_when_cancelled() -> None:
    engine = _engine()
    deltas = list(engine.submit(_cancelled_request(streaming=True)).iter_deltas())
    assert deltas[-1].result is not None
    assert deltas[-1].result.finish_reason == "cancelled"
    engine.shutdown()


def test_submit_after_shutdown_is_refused() -> None:
    engine = _engine()
    engine.shutdown()
    assert not engine.worker_alive
    with pytest.raises(RuntimeError, match="shut down"):
        engine.submit(_cancelled_request())
