"""The scenarios of the benchmark: what is sent to a gateway, and what the direct-upstream baseline sends.

The baseline sends the equivalent upstream request straight to the fake upstream, so "added latency" is
the gateway's p50 minus the baseline's p50 for the same answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench import payloads
from bench.gateways import MASTER_KEY, UPSTREAM_KEY
from bench.upstream.responses import FAST_PIECES, SUMMARY_TEXT

CLIENT_HEADERS = {"x-api-key": MASTER_KEY, "anthropic-version": "2023-06-01"}
_OPENAI_UPSTREAM_HEADERS = {"authorization": f"Bearer {UPSTREAM_KEY}"}
_ANTHROPIC_UPSTREAM_HEADERS = {"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01"}
_GEMINI_UPSTREAM_HEADERS = {"x-goog-api-key": UPSTREAM_KEY}
_GEMINI_PATH = "/v1beta/models/gemini-3-flash-preview"
_BEDROCK_HEADERS = {"authorization": "AWS4-HMAC-SHA256 (not checked by the fake upstream)"}

# Texts every successful answer must contain (checked by wrk's Lua on each answer).
_EXPECT_MESSAGE = "end_turn"
_EXPECT_STREAM = "event: message_stop"


@dataclass(frozen=True)
class Scenario:
    """One load scenario (a-d) through a gateway, and its direct-upstream twin."""

    key: str
    title: str
    body: payloads.JSON
    stream: bool
    query: str = ""
    extra_headers: dict[str, str] = field(default_factory=dict)
    direct_path: str = "/v1/chat/completions"
    direct_body: payloads.JSON = field(default_factory=dict)
    direct_headers: dict[str, str] = field(default_factory=dict)
    direct_expect: str = ""
    usage: tuple[int, int] | None = None
    """(input_tokens, output_tokens) the answer must report exactly; None to check only that usage is
    there (the Responses scenarios check theirs through ``thinking``)."""
    thinking: str | None = None
    """The thinking text the answer must carry before its text (the upstream's reasoning summary), and
    the exact usage is checked too; None for answers without reasoning."""

    @property
    def headers(self) -> dict[str, str]:
        return {**CLIENT_HEADERS, **self.extra_headers}

    @property
    def expect(self) -> str:
        return _EXPECT_STREAM if self.stream else _EXPECT_MESSAGE


def load_scenarios() -> dict[str, Scenario]:
    """Scenarios a-d and f-k (e is the slow-stream run, see bench/slow_streams.py)."""
    cc = payloads.claude_code_request()
    return {
        "a": Scenario(
            key="a",
            title="small, non-streaming, OpenAI upstream",
            body=payloads.seed_request(),
            stream=False,
            direct_body=payloads.openai_direct_request(),
            direct_headers=_OPENAI_UPSTREAM_HEADERS,
            direct_expect='"finish_reason":"stop"',
        ),
        "b": Scenario(
            key="b",
            title="small, streaming, OpenAI upstream",
            body=payloads.seed_request(stream=True),
            stream=True,
            direct_body=payloads.openai_direct_request(stream=True),
            direct_headers=_OPENAI_UPSTREAM_HEADERS,
            direct_expect="data: [DONE]",
        ),
        "c": Scenario(
            key="c",
            title=f"Claude-Code-shaped {len(payloads.encode(cc)) / 1000:.0f} KB, streaming, OpenAI upstream",
            body=cc,
            stream=True,
            query="?beta=true",
            extra_headers=payloads.CLAUDE_CODE_HEADERS,
            # The baseline posts the same ~89 KB to the upstream, so body transfer is in both figures.
            direct_body={**cc, "model": "gpt-4o-mini"},
            direct_headers=_OPENAI_UPSTREAM_HEADERS,
            direct_expect="data: [DONE]",
        ),
        "d": Scenario(
            key="d",
            title="small, non-streaming, Anthropic passthrough",
            body=payloads.seed_request(payloads.ANTHROPIC_MODEL),
            stream=False,
            direct_path="/v1/messages",
            direct_body={**payloads.seed_request(), "model": "claude-sonnet-4-5"},
            direct_headers=_ANTHROPIC_UPSTREAM_HEADERS,
            direct_expect=_EXPECT_MESSAGE,
        ),
        "f": Scenario(
            key="f",
            title="small, non-streaming, Gemini API",
            body=payloads.seed_request(payloads.GEMINI_MODEL),
            stream=False,
            direct_path=f"{_GEMINI_PATH}:generateContent",
            direct_body=payloads.gemini_direct_request(),
            direct_headers=_GEMINI_UPSTREAM_HEADERS,
            direct_expect='"finishReason":"STOP"',
        ),
        "g": Scenario(
            key="g",
            title="small, streaming, Gemini API",
            body=payloads.seed_request(payloads.GEMINI_MODEL, stream=True),
            stream=True,
            direct_path=f"{_GEMINI_PATH}:streamGenerateContent?alt=sse",
            direct_body=payloads.gemini_direct_request(),
            direct_headers=_GEMINI_UPSTREAM_HEADERS,
            direct_expect='"finishReason":"STOP"',
        ),
        "h": Scenario(
            key="h",
            title="small, non-streaming, OpenAI Responses upstream (reasoning + text)",
            body=payloads.responses_request(),
            stream=False,
            direct_path="/v1/responses",
            direct_body=payloads.responses_direct_request(),
            direct_headers=_OPENAI_UPSTREAM_HEADERS,
            direct_expect='"output_tokens_details"',
            thinking=SUMMARY_TEXT,
        ),
        "i": Scenario(
            key="i",
            title="small, streaming, OpenAI Responses upstream (reasoning + text)",
            body=payloads.responses_request(stream=True),
            stream=True,
            direct_path="/v1/responses",
            direct_body=payloads.responses_direct_request(stream=True),
            direct_headers=_OPENAI_UPSTREAM_HEADERS,
            direct_expect="event: response.completed",
            thinking=SUMMARY_TEXT,
        ),
        "j": Scenario(
            key="j",
            title="small, streaming, Bedrock ConverseStream (SigV4)",
            body=payloads.seed_request(payloads.BEDROCK_CONVERSE_MODEL, stream=True),
            stream=True,
            direct_path="/model/amazon.nova-pro-v1%3A0/converse-stream",
            direct_body=payloads.bedrock_converse_direct_request(),
            direct_headers=_BEDROCK_HEADERS,
            direct_expect="messageStop",
            usage=(15, len(FAST_PIECES)),
        ),
        "k": Scenario(
            key="k",
            title="small, streaming, Claude on Bedrock InvokeModelWithResponseStream (SigV4)",
            body=payloads.seed_request(payloads.BEDROCK_CLAUDE_MODEL, stream=True),
            stream=True,
            direct_path="/model/anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
            direct_body=payloads.bedrock_invoke_direct_request(),
            direct_headers=_BEDROCK_HEADERS,
            direct_expect='"bytes":',
            usage=(15, len(FAST_PIECES)),
        ),
    }


SCENARIO_E_TITLE = "1,000 concurrent slow streams (a chunk every 100 ms for 10 s), OpenAI upstream"


def models_used(keys: str) -> set[str]:
    """Model names the selected scenarios send, so a gateway's config names only those.

    Why: a gateway that cannot load one provider yet (a config error) can still be measured on the
    scenarios that do not need it, e.g. `--scenarios d` for Anthropic passthrough alone.
    """
    scenarios = load_scenarios()
    used = {str(scenarios[k].body["model"]) for k in keys if k in scenarios}
    if "e" in keys:
        used.add(payloads.OPENAI_SLOW_MODEL)
    return used


def slow_stream_body() -> bytes:
    return payloads.encode(payloads.seed_request(payloads.OPENAI_SLOW_MODEL, stream=True))


# Budget of the issue: CPU ms per request at 32 connections with one worker.
# The Gemini scenarios (f, g) and the Responses ones (h, i) have the Chat Completions translator's
# budgets of (a) and (b); the Bedrock streams (j, k) have (b)'s plus SigV4 signing, measured at 10-24 µs
# a request in-process (SigV4Signer.sign of the bench's request, 20,000 signings, on the 2-core machine).
SIGV4_MS = 0.025
CPU_BUDGET_MS = {
    **{"a": 0.4, "b": 0.8, "c": 1.5, "d": 0.3, "f": 0.4, "g": 0.8, "h": 0.4, "i": 0.8},
    **{"j": 0.8 + SIGV4_MS, "k": 0.8 + SIGV4_MS},
}
ADDED_LATENCY_BUDGET_MS = {"a": 1.0, "d": 1.0, "h": 1.0}
LOAD_SCENARIOS = "abcdfghijk"
"""The scenarios measured with wrk, in report order (e has its own table)."""
SLOW_STREAMS_RSS_BUDGET_MB = 300.0
TEAMS_ADDED_CPU_BUDGET_MS = 0.05
"""The teams issue: with 10,000 keys in the database, the small-request scenarios' CPU per request
within this much of the figure without keys (the `--teams` variants against the default anygate)."""
# anygate must cost at least this many times less CPU per request than LiteLLM.
RATIO_TARGET = 50.0
