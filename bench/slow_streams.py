"""Scenario (e): many concurrent slow streams held open through the gateway at once.

Why: Claude Code sessions keep long streams open while the model thinks. What matters there is not CPU per
request but memory per open stream and that none of them is dropped or cut short: 1,000 streams that each
get a chunk every 100 ms for 10 s. Each stream must end with `message_stop`; a stream that ends without
it, or with an error event, failed. Only `ping` events after `message_stop` are tolerated as complete but
counted apart (message_stop should be the last event of a stream).

Why an asyncio client rather than wrk: wrk counts requests per second, not concurrent long streams, and
cannot say which stream ended how. At 1,000 streams x 10 chunks/s the client handles ~10,000 small reads
per second, which aiohttp does on well under one core; it reads raw bytes and only parses the tail.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field

import aiohttp


@dataclass
class StreamOutcome:
    ok: bool
    problem: str
    first_byte_s: float
    total_s: float
    nbytes: int
    # Only ping events came after message_stop: the answer is complete, but message_stop should be last.
    pings_after_stop: bool = False


@dataclass
class SlowStreamsResult:
    """How the 1,000 streams ended."""

    streams: int
    completed: int
    failed: int
    wall_s: float
    first_byte_p50_s: float
    total_p50_s: float
    total_max_s: float
    problems: dict[str, int] = field(default_factory=dict)
    sample_problem: str = ""
    # Completed streams whose message_stop was followed by ping events (a protocol deviation, not a loss).
    pings_after_stop: int = 0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _event_names(tail: bytes) -> list[str]:
    """Event names of the whole frames in the tail of a stream (the first frame may be cut)."""
    names: list[str] = []
    for frame in tail.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in frame.split(b"\n"):
            if line.startswith(b"event:"):
                names.append(line[6:].strip().decode("utf-8", "replace"))
                break
    return names


async def _one(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> StreamOutcome:
    start = time.monotonic()
    first = 0.0
    nbytes = 0
    deltas = 0
    tail = b""
    try:
        async with session.post(
            url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s)
        ) as resp:
            if resp.status != 200:
                text = (await resp.read())[:300].decode("utf-8", "replace")
                return StreamOutcome(False, f"HTTP {resp.status}: {text}", 0.0, time.monotonic() - start, 0)
            async for chunk in resp.content.iter_any():
                if not first:
                    first = time.monotonic() - start
                nbytes += len(chunk)
                deltas += chunk.count(b"event: content_block_delta")
                tail = (tail + chunk)[-4096:]
    except (TimeoutError, aiohttp.ClientError) as exc:
        return StreamOutcome(False, f"{type(exc).__name__}: {exc}", first, time.monotonic() - start, nbytes)
    total = time.monotonic() - start
    names = _event_names(tail)
    if "error" in names:
        return StreamOutcome(
            False, "error event: " + tail[-300:].decode("utf-8", "replace"), first, total, nbytes
        )
    after_stop = names[len(names) - names[::-1].index("message_stop") :] if "message_stop" in names else None
    if after_stop is None or any(n != "ping" for n in after_stop):
        last = names[-1] if names else ""
        stop = "earlier in the stream" if after_stop is not None else "never sent"
        problem = (
            f"last event {last!r}, not message_stop (after {total:.1f} s, {nbytes} bytes, ~{deltas} deltas, "
            f"message_stop {stop}; stream tail: {tail[-400:].decode('utf-8', 'replace')!r})"
        )
        return StreamOutcome(False, problem, first, total, nbytes)
    return StreamOutcome(True, "", first, total, nbytes, pings_after_stop=bool(after_stop))


def _median(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


async def _run(
    url: str, body: bytes, headers: dict[str, str], streams: int, timeout_s: float
) -> SlowStreamsResult:
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    start = time.monotonic()
    async with aiohttp.ClientSession(connector=connector) as session:
        hdrs = {"content-type": "application/json", **headers}
        outcomes = await asyncio.gather(*(_one(session, url, body, hdrs, timeout_s) for _ in range(streams)))
    wall = time.monotonic() - start
    problems: dict[str, int] = {}
    for o in outcomes:
        if not o.ok:
            key = o.problem.split(" (")[0].split(":")[0][:60]
            problems[key] = problems.get(key, 0) + 1
    return SlowStreamsResult(
        streams=streams,
        completed=sum(o.ok for o in outcomes),
        failed=sum(not o.ok for o in outcomes),
        wall_s=wall,
        first_byte_p50_s=_median([o.first_byte_s for o in outcomes if o.first_byte_s]),
        total_p50_s=_median([o.total_s for o in outcomes]),
        total_max_s=max((o.total_s for o in outcomes), default=0.0),
        problems=problems,
        sample_problem=next((o.problem for o in outcomes if not o.ok), ""),
        pings_after_stop=sum(o.pings_after_stop for o in outcomes),
    )


def run_slow_streams(
    url: str, body: bytes, headers: dict[str, str], streams: int = 1000, timeout_s: float = 120
) -> SlowStreamsResult:
    """Open `streams` streams at once and wait (at most timeout_s each) for all of them to end."""
    return asyncio.run(_run(url, body, headers, streams, timeout_s))
