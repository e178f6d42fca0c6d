"""Guards whose state lives in a store shared by router replicas (Redis, via fakeredis)."""

import threading
from typing import Any

import fakeredis
import pytest

from langchain_hybrid.routing.guards import Budget, CircuitBreaker, CloudOutcome
from langchain_hybrid.routing.state import InMemoryStore, RedisStore


@pytest.fixture
def redis_client() -> Any:
    return fakeredis.FakeRedis(server=fakeredis.FakeServer())


def test_replicas_share_one_circuit_state(redis_client: Any) -> None:
    now = [1000.0]
    # Two replicas, each with its own client and breaker object, one Redis.
    a = CircuitBreaker(2, cooldown_s=30, store=RedisStore(redis_client), clock=lambda: now[0])
    b = CircuitBreaker(2, cooldown_s=30, store=RedisStore(redis_client), clock=lambda: now[0])
    a.acquire().release(CloudOutcome(failure="unavailable"))
    b.acquire().release(CloudOutcome(failure="unavailable"))  # the second failure, elsewhere
    assert a.state == b.state == "open"
    assert a.acquire() is None and b.acquire() is None
    now[0] += 31
    probe = a.acquire()
    assert probe is not None
    assert b.acquire() is None  # one probe across all replicas
    probe.release(CloudOutcome())
    assert b.state == "closed" and b.snapshot()["times_opened"] == 1


def test_replicas_spend_from_one_budget(redis_client: Any) -> None:
    replicas = [Budget(max_usd=0.05, store=RedisStore(redis_client)) for _ in range(3)]
    for budget in replicas:
        budget.acquire().release(CloudOutcome(cost_usd=0.02, tokens=100))
    assert all(b.acquire() is None for b in replicas)  # 0.06 spent in all
    snap = replicas[0].snapshot()
    assert snap["spent_usd"] == pytest.approx(0.06)
    assert snap["spent_tokens"] == 300
    assert snap["exhausted"] is True


def test_concurrent_replicas_lose_no_spending(redis_client: Any) -> None:
    budget = Budget(max_cloud_tokens=10**9, store=RedisStore(redis_client))
    other = Budget(max_cloud_tokens=10**9, store=RedisStore(redis_client))

    def spend(guard: Budget) -> None:
        for _ in range(25):
            permit = guard.acquire()
            assert permit is not None
            permit.release(CloudOutcome(tokens=1))

    threads = [threading.Thread(target=spend, args=(g,)) for g in (budget, other) * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = other.snapshot()
    assert snap["spent_tokens"] == 100
    assert snap["in_flight"] == 0


def test_a_reservation_of_a_dead_replica_expires(redis_client: Any) -> None:
    now = [0.0]
    store = RedisStore(redis_client)
    dead = Budget(max_usd=1.0, store=store, clock=lambda: now[0])
    alive = Budget(max_usd=1.0, store=store, clock=lambda: now[0])
    alive.acquire().release(CloudOutcome(cost_usd=0.6))
    assert dead.acquire() is not None  # reserves 0.6; its replica dies before releasing
    assert alive.acquire() is None  # 0.6 + 0.6 reserved would pass the cap
    now[0] += 301  # past the shared lease (300 s)
    assert alive.snapshot()["in_flight"] == 0
    assert alive.acquire() is not None


def test_guards_on_one_store_keep_apart_by_key(redis_client: Any) -> None:
    store = RedisStore(redis_client)
    gpt4 = CircuitBreaker(1, store=store, key="gpt-4o")
    mini = CircuitBreaker(1, store=store, key="gpt-4o-mini")
    gpt4.acquire().release(CloudOutcome(failure="timeout"))
    assert gpt4.state == "open" and mini.state == "closed"


def test_redis_state_expires_after_its_ttl(redis_client: Any) -> None:
    store = RedisStore(redis_client, ttl_s=60)
    Budget(max_usd=1.0, store=store).acquire().release(CloudOutcome(cost_usd=0.1))
    ttl_ms = redis_client.pttl("langchain-hybrid:guard:budget")
    assert 0 < ttl_ms <= 60_000


def test_an_in_memory_store_can_be_shared_by_guards_in_one_process() -> None:
    store = InMemoryStore()
    a, b = Budget(max_usd=0.01, store=store), Budget(max_usd=0.01, store=store)
    a.acquire().release(CloudOutcome(cost_usd=0.01))
    assert b.acquire() is None


def test_store_settings_are_checked() -> None:
    with pytest.raises(TypeError, match="GuardStore"):
        Budget(max_usd=1.0, store=object())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lease_s"):
        CircuitBreaker(lease_s=0)
    with pytest.raises(ValueError, match="client or url"):
        RedisStore()
    with pytest.raises(ValueError, match="ttl_s"):
        RedisStore(fakeredis.FakeRedis(), ttl_s=-1)
