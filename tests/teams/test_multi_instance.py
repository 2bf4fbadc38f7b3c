"""Two real ``anygate`` processes on one Postgres and one Redis, under concurrent load.

What docs/teams.md promises for a deployment of several instances, checked on the command users run:

- with Redis, an ``rpm`` limit holds across instances (exceeded by at most one request per instance),
  and a budget stops every instance once spent (overshoot bounded by the cost of the requests in
  flight when it is reached and of those admitted before the instances hear of it);
- a hard kill (SIGKILL) loses at most what the killed instance buffered in its last
  ``proxy_batch_write_at`` seconds; everything the survivor served arrives;
- with the database stopped, requests keep being served from the key cache and their spend arrives
  once the database is back.

Spend is counted per request: every answer carries the ``request-id`` of its spend row, so the test
knows which requests the database must hold, not just a total.
"""

from __future__ import annotations

import asyncio
import math
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anthropic
import pytest

from anygate.teams.limits import FRESH
from tests.conftest import MASTER_KEY
from tests.fakes.gateway_server import free_port
from tests.rawhttp import send
from tests.teams.services import ThrowawayPostgres
from tests.teams.support import PRICE_IN, PRICE_OUT
from tests.test_cli import ANYGATE, _environment

BATCH_WRITE_AT = 0.2
"""``proxy_batch_write_at`` of these gateways: the documented most a hard kill can lose."""
WRITE_SLACK = 0.3
"""Beyond that interval: the duration of the spend transaction the kill may interrupt, and the time
between the gateway recording a request and its client reading the answer."""
THREADS = 6
HEARD_WITHIN = FRESH + 2 * 0.05
"""How old Redis's figures can be on an instance: an end waits for the next call (every 50 ms), what
Redis said is trusted for ``FRESH`` seconds, and the question that refreshes it goes with the next
call."""
REQUEST_TIME = 0.5
"""Allowance for one request's own time through a gateway on a loaded test machine."""


def gateway_config(database_url: str, redis_url: str, redis_prefix: str) -> str:
    return f"""
model_list:
  - model_name: claude-test
    litellm_params:
      model: mock/claude
    model_info:
      input_cost_per_token: {PRICE_IN}
      output_cost_per_token: {PRICE_OUT}
general_settings:
  master_key: {MASTER_KEY}
  database_url: {database_url}
  redis_url: {redis_url}
  redis_key_prefix: '{redis_prefix}'
  proxy_batch_write_at: {BATCH_WRITE_AT}
  key_sync_interval: 0.1
"""


class Instance:
    """One ``anygate --config`` process; its log goes to a file (a pipe nobody reads could fill up)."""

    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with log.open("w") as sink:
            self.process = subprocess.Popen(
                [ANYGATE, "--config", str(config), "--host", "127.0.0.1", "--port", str(self.port)],
                env=_environment(),
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if send(self.url, "GET", "/health", timeout=1).status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"anygate did not start: {self.log.read_text()}")
            time.sleep(0.05)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def sigkill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def terminate(self) -> None:
        """SIGTERM: the graceful shutdown writes the spend buffer before the process exits."""
        self.process.send_signal(signal.SIGTERM)
        returncode = self.process.wait(15)
        assert returncode in (0, -signal.SIGTERM), (returncode, self.log.read_text())

    def close(self) -> None:
        if self.alive:
            self.process.kill()
            self.process.wait(10)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[[str, str, str], list[Instance]]]:
    started: list[Instance] = []

    def start_two(database_url: str, redis_url: str, redis_prefix: str) -> list[Instance]:
        config = tmp_path / "anygate.yaml"
        config.write_text(gateway_config(database_url, redis_url, redis_prefix))
        pair = [Instance(config, tmp_path / f"gateway-{i}.log") for i in range(2)]
        started.extend(pair)
        for instance in pair:
            instance.wait_ready()
        return pair

    yield start_two
    for instance in started:
        instance.close()


# --- keys and load -----------------------------------------------------------------------------------


def generate_key(instance: Instance, body: dict[str, Any]) -> tuple[str, str]:
    """A new virtual key (and its hash), known to every instance (a sync) before it is returned."""
    answer = send(
        instance.url,
        "POST",
        "/key/generate",
        {"models": ["claude-test"], **body},
        {"authorization": f"Bearer {MASTER_KEY}"},
    )
    assert answer.status == 200, answer.body
    created = answer.json()
    return created["key"], created["token_id"]


def wait_known(instances: list[Instance], key: str, timeout: float = 5) -> None:
    """Every instance knows the key: /key/info with the key itself is answered 200 (and costs nothing)."""
    deadline = time.monotonic() + timeout
    for instance in instances:
        while send(instance.url, "GET", "/key/info", None, {"authorization": f"Bearer {key}"}).status != 200:
            assert time.monotonic() < deadline, "the key did not reach every instance"
            time.sleep(0.02)


@dataclass
class Outcome:
    instance: int
    status: int  # 0: no answer (connection refused or cut)
    done: float  # monotonic time the client had the answer
    request_id: str = ""
    cost: float = 0.0


@dataclass
class Load:
    """``THREADS`` clients with one key, each alternating between the instances still alive."""

    instances: list[Instance]
    key: str
    stop_when: Callable[[list[Outcome]], bool] = lambda outcomes: False
    max_requests: int = 2000
    outcomes: list[Outcome] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._client, args=(n,)) for n in range(THREADS)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def wait(self, timeout: float = 20) -> None:
        for thread in self._threads:
            thread.join(timeout)
        assert not any(thread.is_alive() for thread in self._threads), "the load did not end"

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def wait_for(self, predicate: Callable[[list[Outcome]], bool], timeout: float = 20) -> None:
        """Until the answers so far satisfy ``predicate``: phases end on counts, not on sleeps, so a
        slow machine gives the same test."""
        deadline = time.monotonic() + timeout
        while not predicate(self.snapshot()):
            assert time.monotonic() < deadline, "the load did not get that far in time"
            time.sleep(0.01)

    def _client(self, number: int) -> None:
        clients = [
            anthropic.Anthropic(api_key=self.key, base_url=i.url, max_retries=0, timeout=10)
            for i in self.instances
        ]
        turn = number
        try:
            while not self._stop.is_set():
                alive = [n for n, instance in enumerate(self.instances) if instance.alive]
                index = alive[turn % len(alive)]
                turn += 1
                outcome = self._one(clients[index], index)
                with self._lock:
                    self.outcomes.append(outcome)
                    if self.stop_when(self.outcomes) or len(self.outcomes) >= self.max_requests:
                        self._stop.set()
        finally:
            for made in clients:
                made.close()

    @staticmethod
    def _one(client: anthropic.Anthropic, index: int) -> Outcome:
        try:
            message = client.messages.create(
                model="claude-test", max_tokens=32, messages=[{"role": "user", "content": "hello"}]
            )
        except anthropic.APIStatusError as exc:
            return Outcome(index, exc.status_code, time.monotonic())
        except anthropic.APIConnectionError:
            return Outcome(index, 0, time.monotonic())
        usage = message.usage
        cost = usage.input_tokens * PRICE_IN + usage.output_tokens * PRICE_OUT
        assert message._request_id, "every answer names its spend row"
        return Outcome(index, 200, time.monotonic(), message._request_id, cost)


# --- the database ------------------------------------------------------------------------------------


async def _recorded(database_url: str, token: str) -> tuple[dict[str, float], float]:
    import asyncpg

    connection = await asyncpg.connect(database_url, timeout=5)
    try:
        rows = await connection.fetch(
            "SELECT request_id, spend FROM anygate_spend_logs WHERE api_key = $1", token
        )
        total = await connection.fetchval("SELECT spend FROM anygate_key_spend WHERE token = $1", token)
    finally:
        await connection.close()
    return {row["request_id"]: row["spend"] for row in rows}, float(total)


def recorded(database_url: str, token: str) -> tuple[dict[str, float], float]:
    """The key's spend rows (request id → cost) and its spend total, as the database has them."""
    return asyncio.run(_recorded(database_url, token))


def count(
    outcomes: list[Outcome], instance: int | None = None, *, after: float = 0.0, before: float = math.inf
) -> int:
    """The 200 answers (of one instance) received in a time span."""
    return sum(
        1 for o in outcomes if o.status == 200 and instance in (None, o.instance) and after < o.done < before
    )


def served(outcomes: list[Outcome]) -> dict[str, float]:
    return {o.request_id: o.cost for o in outcomes if o.status == 200}


def assert_total_matches_rows(rows: dict[str, float], total: float) -> None:
    assert total == pytest.approx(sum(rows.values()), rel=1e-9, abs=1e-12)


def _clear_of_minute_boundary(needed: float) -> None:
    """Rate windows are fixed minutes: start a counting phase with ``needed`` seconds left in its minute."""
    left = 60 - time.time() % 60
    if left < needed:
        time.sleep(left + 0.05)


# --- the tests ---------------------------------------------------------------------------------------


def test_one_rate_limit_and_one_budget_hold_across_two_processes(
    launch: Callable[[str, str, str], list[Instance]],
    fresh_postgres_url: str,
    redis_server: str,
    redis_prefix: str,
) -> None:
    pair = launch(fresh_postgres_url, redis_server, redis_prefix)
    rpm_limit = 25
    limited, limited_token = generate_key(pair[0], {"rpm_limit": rpm_limit})
    unit = unit_cost(pair[0])
    budget = 12.5 * unit
    budgeted, budgeted_token = generate_key(pair[1], {"max_budget": budget})
    wait_known(pair, limited)
    wait_known(pair, budgeted)

    # rpm: 6 clients send 60 requests over both instances; the limit is accepted, and "at most one
    # request per instance" more
    _clear_of_minute_boundary(needed=15)
    window = math.floor(time.time() / 60)
    with Load(pair, limited, max_requests=60) as load:
        load.wait()
    assert math.floor(time.time() / 60) == window, "the rpm phase crossed a minute boundary"
    outcomes = load_rpm = load.snapshot()
    statuses = sorted({o.status for o in outcomes})
    assert statuses == [200, 429], statuses
    accepted = [o for o in outcomes if o.status == 200]
    assert rpm_limit <= len(accepted) <= rpm_limit + len(pair)
    for index in (0, 1):  # both instances served and both refused: the count is shared, not per process
        assert any(o.instance == index and o.status == 200 for o in outcomes)
        assert any(o.instance == index and o.status == 429 for o in outcomes)

    # budget: clients keep going until each instance refused with 402; overshoot ≤ requests in flight
    def both_refuse(seen: list[Outcome]) -> bool:
        return {o.instance for o in seen if o.status == 402} == {0, 1}

    with Load(pair, budgeted, stop_when=both_refuse, max_requests=400) as load:
        load.wait()
    outcomes = load.snapshot()
    assert both_refuse(outcomes), "the budget did not stop both instances"
    assert {o.status for o in outcomes} == {200, 402}
    accepted = [o for o in outcomes if o.status == 200]
    spent = sum(o.cost for o in accepted)
    assert spent >= budget, "a request was refused before the budget was spent"
    # "a budget [is overshot] by the cost of the requests in flight when it is reached, and of those
    # admitted before the instances hear of it": past the request whose cost reaches it and one in
    # flight per client, requests are accepted only while Redis's figures may be stale
    reached_by = math.ceil(budget / unit)
    finished = sorted(o.done for o in accepted)
    if len(accepted) > reached_by + THREADS:
        late = finished[-1] - finished[reached_by - 1]
        assert late <= HEARD_WITHIN + REQUEST_TIME, (
            f"{len(accepted)} requests accepted ({reached_by} reach the budget, {THREADS} can be in "
            f"flight), the last {late:.3f} s after the budget was reached"
        )
    # once spent, spent everywhere: a fresh request is refused by each instance
    for instance in pair:
        with pytest.raises(anthropic.APIStatusError) as refused:
            _ask(instance, budgeted)
        assert refused.value.status_code == 402

    # every accepted request's spend reaches the database, exactly once (graceful shutdown flushes)
    for instance in pair:
        instance.terminate()
    rows, total = recorded(fresh_postgres_url, budgeted_token)
    assert rows == pytest.approx(served(outcomes))
    assert_total_matches_rows(rows, total)
    rows, total = recorded(fresh_postgres_url, limited_token)
    assert len(rows) == len([o for o in load_rpm if o.status == 200])
    assert_total_matches_rows(rows, total)


def unit_cost(instance: Instance) -> float:
    """What one request of the load costs (asked with the master key: no virtual key pays for it)."""
    message = _ask(instance, MASTER_KEY)
    return float(message.usage.input_tokens * PRICE_IN + message.usage.output_tokens * PRICE_OUT)


def _ask(instance: Instance, key: str) -> Any:
    with anthropic.Anthropic(api_key=key, base_url=instance.url, max_retries=0) as client:
        return client.messages.create(
            model="claude-test", max_tokens=32, messages=[{"role": "user", "content": "hello"}]
        )


def test_a_hard_kill_loses_at_most_the_last_batch_interval_of_spend(
    launch: Callable[[str, str, str], list[Instance]],
    fresh_postgres_url: str,
    redis_server: str,
    redis_prefix: str,
) -> None:
    pair = launch(fresh_postgres_url, redis_server, redis_prefix)
    key, token = generate_key(pair[0], {})
    wait_known(pair, key)
    victim, survivor = pair
    with Load(pair, key) as load:
        load.wait_for(lambda seen: count(seen, instance=0) >= 40)
        started = min(o.done for o in load.snapshot())
        time.sleep(max(0.0, started + 3 * BATCH_WRITE_AT - time.monotonic()))  # a few batches written
        killed_at = time.monotonic()
        victim.sigkill()
        load.wait_for(lambda seen: count(seen, instance=1, after=killed_at) >= 40)  # the survivor goes on
    survivor.terminate()
    outcomes = load.snapshot()
    rows, total = recorded(fresh_postgres_url, token)
    answered = served(outcomes)
    before_kill = [o for o in outcomes if o.instance == 0 and o.status == 200]

    # nothing recorded that was not served (bar requests cut by the kill, whose answers never arrived)
    cut = [o for o in outcomes if o.status == 0]
    unexplained = set(rows) - set(answered)
    assert len(unexplained) <= len(cut), unexplained
    for request_id in set(rows) & set(answered):
        assert rows[request_id] == pytest.approx(answered[request_id])
    assert_total_matches_rows(rows, total)
    # the survivor lost nothing
    assert all(o.request_id in rows for o in outcomes if o.instance == 1 and o.status == 200)
    # the victim lost only what it answered in its last batch interval before the kill
    lost = [o for o in before_kill if o.request_id not in rows]
    assert len(lost) < len(before_kill), "the victim wrote spend batches while it ran"
    last_written = max(o.done for o in before_kill if o.request_id in rows)
    # what is lost is the tail (answers may reach their clients a little out of order): no hole
    assert all(o.done > last_written - 0.1 for o in lost), "spend lost from before a written batch"
    window = BATCH_WRITE_AT + WRITE_SLACK
    assert all(o.done > killed_at - window for o in lost), [killed_at - o.done for o in lost]
    lost_cost = sum(o.cost for o in lost)
    at_risk = sum(o.cost for o in before_kill if o.done > killed_at - window)
    assert sum(answered.values()) - sum(rows.values()) <= lost_cost + 1e-9
    assert lost_cost <= at_risk + 1e-9


def test_requests_are_served_while_the_database_is_down_and_their_spend_arrives_after(
    launch: Callable[[str, str, str], list[Instance]],
    redis_server: str,
    redis_prefix: str,
) -> None:
    database = ThrowawayPostgres()
    try:
        pair = launch(database.url, redis_server, redis_prefix)
        key, token = generate_key(pair[0], {"max_budget": 1000.0, "rpm_limit": 100_000})
        wait_known(pair, key)
        with Load(pair, key) as load:
            load.wait_for(lambda seen: count(seen) >= 20)
            database.stop()
            down_from = time.monotonic()
            time.sleep(1.0)  # several spend writes and key syncs fail meanwhile
            load.wait_for(lambda seen: min(count(seen, n, after=down_from) for n in (0, 1)) >= 20)
            down_until = time.monotonic()
            database.start()
            up_at = time.monotonic()
            load.wait_for(lambda seen: count(seen, after=up_at) >= 20)
        outcomes = load.snapshot()
        # every request was served: with the database down, from the key cache
        assert {o.status for o in outcomes} == {200}, sorted({o.status for o in outcomes})
        assert min(count(outcomes, n, after=down_from, before=down_until) for n in (0, 1)) >= 20

        # both still running: the ledgers retry on their own (no shutdown flush helps here)
        expected = served(outcomes)
        deadline = time.monotonic() + 15
        while True:
            rows, total = recorded(database.url, token)
            if set(rows) == set(expected) or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert set(rows) == set(expected), f"{len(set(expected) - set(rows))} requests' spend never arrived"
        assert rows == pytest.approx(expected)
        assert_total_matches_rows(rows, total)
        arrived = time.monotonic() - up_at
        for instance in pair:
            instance.terminate()
        assert arrived < 10, arrived
    finally:
        database.remove()
