"""One checked request per scenario before it is measured.

Why: a benchmark of a gateway that answers fast but wrong (an error body, a stream cut short, lost text)
measures nothing. Each scenario's request is sent once and its answer checked against what the fake
upstream says, in Anthropic's format; a failure is kept with the request and the answer so it can be
reported verbatim.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

from bench.upstream.responses import ANSWER_TEXT, RESPONSES_OUTPUT_TOKENS

SEALED_REASONING_PREFIX = "anygate.v2.openai_responses."
"""How the signature of a thinking block carrying a Responses reasoning item starts (the gateway's
sealed envelope, see src/anygate/signing.py)."""
PROMPT_TOKENS = 15
"""``input_tokens`` of every fixed upstream answer."""


@dataclass
class Check:
    """The outcome of one checked request."""

    ok: bool
    problem: str
    status: int
    response_excerpt: str


def _post(
    url: str, body: bytes, headers: dict[str, str], timeout_s: float
) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout_s)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=body, headers={"content-type": "application/json", **headers})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _check_reasoning(thinking: str, signature: object, expected: str) -> str:
    """The thinking block made from the upstream's reasoning item: its summary, and the sealed item."""
    if thinking != expected:
        return f"thinking {thinking!r} is not the upstream's summary {expected!r}"
    if not isinstance(signature, str) or not signature.startswith(SEALED_REASONING_PREFIX):
        return f"thinking signature {str(signature)[:60]!r} is not a sealed reasoning item"
    return ""


def _check_usage(usage: object, thinking: str | None, expected: tuple[int, int] | None = None) -> str:
    if not isinstance(usage, dict) or "output_tokens" not in usage:
        return "usage.output_tokens missing"
    if expected is not None:
        got = (usage.get("input_tokens"), usage.get("output_tokens"))
        if got != expected:
            return f"usage (input, output) {got}, expected {expected}"
    if thinking is not None:  # the Responses answer: usage exactly as the upstream reported it
        got = (usage.get("input_tokens"), usage.get("output_tokens"))
        if got != (PROMPT_TOKENS, RESPONSES_OUTPUT_TOKENS):
            return f"usage (input, output) {got}, expected {(PROMPT_TOKENS, RESPONSES_OUTPUT_TOKENS)}"
    return ""


def _check_message(data: dict[str, object], thinking: str | None = None) -> str:
    if data.get("type") != "message" or data.get("role") != "assistant":
        return "not a message object"
    content = data.get("content")
    if not isinstance(content, list) or not content:
        return "empty content"
    if thinking is not None:
        kinds = [b.get("type") if isinstance(b, dict) else None for b in content]
        if kinds != ["thinking", "text"]:
            return f"content blocks {kinds}, expected ['thinking', 'text']"
        problem = _check_reasoning(content[0].get("thinking"), content[0].get("signature"), thinking)
        if problem:
            return problem
    text = "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    if text != ANSWER_TEXT:
        return f"text {text!r} is not the upstream's {ANSWER_TEXT!r}"
    if data.get("stop_reason") != "end_turn":
        return f"stop_reason {data.get('stop_reason')!r}, expected 'end_turn'"
    return _check_usage(data.get("usage"), thinking)


def _check_stream(raw: bytes, thinking: str | None = None, usage: tuple[int, int] | None = None) -> str:
    """Frame syntax, event order, JSON type == event name, text (and thinking) equal to the upstream's."""
    frames = [f for f in raw.decode("utf-8", "replace").replace("\r\n", "\n").split("\n\n") if f.strip()]
    names: list[str] = []
    text: list[str] = []
    blocks: list[str] = []
    thought: list[str] = []
    signatures: list[str] = []
    final: dict[str, object] = {}
    for frame in frames:
        event = None
        data = None
        for line in frame.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
        if event is None or data is None:
            return f"frame without event or data line: {frame[:200]!r}"
        try:
            obj = json.loads(data)
        except json.JSONDecodeError:
            return f"data is not JSON: {data[:200]!r}"
        if obj.get("type") != event:
            return f"event {event!r} carries data of type {obj.get('type')!r}"
        if event == "error":
            return f"error event: {data[:300]}"
        names.append(event)
        delta = obj.get("delta", {})
        if event == "content_block_start":
            blocks.append(obj.get("content_block", {}).get("type"))
        elif event == "content_block_delta" and delta.get("type") == "text_delta":
            text.append(delta["text"])
        elif event == "content_block_delta" and delta.get("type") == "thinking_delta":
            thought.append(delta["thinking"])
        elif event == "content_block_delta" and delta.get("type") == "signature_delta":
            signatures.append(delta["signature"])
        elif event == "message_delta":
            final = obj
    if not names:
        return "no events"
    if names[0] != "message_start":
        return f"first event is {names[0]!r}, not message_start"
    if names[-1] != "message_stop":
        return f"last event is {names[-1]!r}, not message_stop (stream cut short)"
    for required in ("content_block_start", "content_block_stop", "message_delta"):
        if required not in names:
            return f"no {required} event"
    if "".join(text) != ANSWER_TEXT:
        return f"streamed text {''.join(text)!r} is not the upstream's"
    delta = final.get("delta")
    stop_reason = delta.get("stop_reason") if isinstance(delta, dict) else None
    if stop_reason != "end_turn":
        return f"stop_reason {stop_reason!r}, expected 'end_turn'"
    if thinking is not None:
        if blocks != ["thinking", "text"]:
            return f"content blocks {blocks}, expected ['thinking', 'text']"
        if len(signatures) != 1:
            return f"{len(signatures)} signature deltas, expected 1"
        problem = _check_reasoning("".join(thought), signatures[0], thinking)
        if problem:
            return problem
        return _check_usage(final.get("usage"), thinking)
    if usage is not None:
        return _check_usage(final.get("usage"), None, usage)
    return ""


def check_request(
    url: str,
    body: bytes,
    headers: dict[str, str],
    stream: bool,
    timeout_s: float = 60,
    thinking: str | None = None,
    usage: tuple[int, int] | None = None,
) -> Check:
    """Send one request and check the answer; never raises for a bad answer. ``thinking``: the reasoning
    summary the answer must carry as a thinking block before the text (its usage is then checked
    exactly); ``usage``: the (input, output) tokens a stream's final ``message_delta`` must report."""
    try:
        status, resp_headers, raw = _post(url, body, headers, timeout_s)
    except OSError as exc:
        return Check(False, f"request failed: {exc!r}", 0, "")
    excerpt = raw[:1500].decode("utf-8", "replace")
    if status != 200:
        return Check(False, f"HTTP {status}", status, excerpt)
    if stream:
        if not resp_headers.get("content-type", "").startswith("text/event-stream"):
            return Check(False, f"content-type {resp_headers.get('content-type')!r}", status, excerpt)
        problem = _check_stream(raw, thinking, usage)
        if problem:
            excerpt = raw[-1500:].decode("utf-8", "replace")
    else:
        try:
            problem = _check_message(json.loads(raw), thinking)
        except json.JSONDecodeError:
            problem = "body is not JSON"
    return Check(not problem, problem, status, excerpt)
