"""The Responses provider against a fake upstream that enforces the stateless reasoning rules: reasoning
round-trips across turns through the gateway, and refused reasoning is retried once without it."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

import anygate
from anygate.config import Config, GeneralSettings, load_config
from anygate.protocol.accumulate import accumulate
from tests.conftest import UPSTREAM_KEY
from tests.fakes.responses_model import RESPONSES_PATH, Call, FakeResponsesModel, Turn
from tests.fakes.upstream import FakeUpstream
from tests.providers.responses_support import assert_valid_responses_request

TOOLS = [{"name": "add", "input_schema": {"type": "object", "properties": {"a": {"type": "number"}}}}]
FIRST = Call("add", {"a": 1})
SECOND = Call("add", {"a": 2})
SCRIPT = [Turn("Plan: add one.", calls=[FIRST]), Turn("", calls=[SECOND]), Turn("Done thinking.", text="3")]


async def ask(upstream: FakeUpstream, messages: list[dict[str, Any]], *, stream: bool) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(
        model="openai/responses/gpt-5",
        messages=messages,
        max_tokens=1000,
        tools=TOOLS,
        thinking={"type": "enabled", "budget_tokens": 4096},
        api_base=f"{upstream.url}/v1",
        api_key=UPSTREAM_KEY,
    )
    if not stream:
        message = await anygate.anthropic.messages.acreate(**kwargs)
        return message.model_dump(exclude_none=True)
    events = await anygate.anthropic.messages.acreate(stream=True, **kwargs)
    return accumulate([event.model_dump(mode="json", exclude_none=True) async for event in events])


async def run_task(upstream: FakeUpstream, *, stream: bool) -> list[dict[str, Any]]:
    """Three turns of a tool loop, the client sending back what it got, as Claude Code does."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "Add things."}]
    for result in ("1", "3", None):
        answer = await ask(upstream, messages, stream=stream)
        content = [{k: v for k, v in block.items() if k != "citations"} for block in answer["content"]]
        messages.append({"role": "assistant", "content": content})
        if result is None:
            break
        call = next(block for block in content if block["type"] == "tool_use")
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": result}],
            }
        )
    return messages


@pytest.mark.parametrize("stream", [True, False])
async def test_reasoning_round_trips_across_turns(upstream: FakeUpstream, stream: bool) -> None:
    model = FakeResponsesModel(SCRIPT)
    upstream.handle(RESPONSES_PATH, model)
    messages = await run_task(upstream, stream=stream)
    assert model.refusals == []
    assert [m["content"][0]["type"] for m in messages if m["role"] == "assistant"] == [
        "thinking",
        "redacted_thinking",
        "thinking",
    ]
    assert messages[-1]["content"][-1]["text"] == "3"
    last = model.requests[-1]
    assert_valid_responses_request(last.body)
    kinds = [item.get("type") or item["role"] for item in last.input]
    assert kinds == ["user", "reasoning", "function_call", "function_call_output",
                     "reasoning", "function_call", "function_call_output"]  # fmt: skip
    replayed = last.reasoning_items()
    assert [r["encrypted_content"] for r in replayed] == [model.issued[r["id"]] for r in replayed]
    assert replayed[0]["summary"][0]["text"] == "Plan: add one." and replayed[1]["summary"] == []
    assert last.output_of(FIRST) == "1" and last.output_of(SECOND) == "3"


async def test_reasoning_another_organisation_made_is_dropped_once(upstream: FakeUpstream) -> None:
    model = FakeResponsesModel(SCRIPT)
    upstream.handle(RESPONSES_PATH, model)
    messages = await run_task(upstream, stream=True)
    other = FakeResponsesModel(SCRIPT, organisation="org-b")  # the conversation moves to another key
    upstream.handle(RESPONSES_PATH, other)
    answer = await ask(upstream, messages[:-1], stream=True)
    assert answer["content"][-1]["text"] == "3"
    assert len(other.requests) == 2 and other.refusals[0].endswith("could not be verified.")
    assert other.requests[0].reasoning_items() and not other.requests[1].reasoning_items()


async def test_a_refusal_that_is_not_about_reasoning_is_not_retried(upstream: FakeUpstream) -> None:
    from tests.fakes.upstream import Json

    upstream.script(
        RESPONSES_PATH, Json({"error": {"message": "bad tools", "code": "invalid_value"}}, status=400)
    )
    with pytest.raises(
        anygate.anthropic_errors.BadRequestError if hasattr(anygate, "anthropic_errors") else Exception
    ):
        await ask(upstream, [{"role": "user", "content": "hi"}], stream=False)
    assert len(upstream.requests_to(RESPONSES_PATH)) == 1


def test_configs_reach_the_responses_api(tmp_path: Any) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        """
model_list:
  - model_name: a
    litellm_params: {model: openai/responses/gpt-5, api_key: k}
  - model_name: b
    litellm_params: {model: azure/responses/my-deployment, api_base: "https://r.openai.azure.com", api_key: k}
  - model_name: c
    litellm_params: {model: hosted_vllm/gpt-oss-120b, api_base: "http://h:8000/v1", use_responses_api: true}
  - model_name: d
    litellm_params: {model: openai/gpt-5, api_key: k}
    model_info: {mode: responses}
  - model_name: e
    litellm_params: {model: openai/gpt-5, api_key: k}
  - model_name: f
    litellm_params: {model: responses/o3, custom_llm_provider: openai, api_key: k}
"""
    )
    config = load_config(str(path))
    assert [(d.provider, d.upstream_model) for d in config.deployments] == [
        ("openai/responses", "gpt-5"),
        ("azure/responses", "my-deployment"),
        ("hosted_vllm/responses", "gpt-oss-120b"),
        ("openai/responses", "gpt-5"),
        ("openai", "gpt-5"),
        ("openai/responses", "o3"),
    ]
    path.write_text(
        "model_list:\n  - model_name: x\n    litellm_params: {model: openai/gpt-5, use_responses_api: 1}\n"
    )
    with pytest.raises(Exception, match="use_responses_api"):
        load_config(str(path))


def _edited(signature: str) -> str:
    """The envelope with its sealed reasoning item edited as a client could: another
    ``encrypted_content`` (one the upstream would accept), the MAC left as it was."""
    prefix, body, mac = signature.rsplit(".", 2)
    payload = orjson.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload["encrypted_content"] = payload["encrypted_content"][:-4] + "AAAA"
    forged = base64.urlsafe_b64encode(orjson.dumps(payload)).decode().rstrip("=")
    return f"{prefix}.{forged}.{mac}"


@pytest.mark.parametrize("stream", [True, False])
async def test_an_edited_reasoning_envelope_is_not_sent_upstream(
    upstream: FakeUpstream, stream: bool
) -> None:
    model = FakeResponsesModel(SCRIPT)
    upstream.handle(RESPONSES_PATH, model)
    messages = [{"role": "user", "content": "Add things."}]
    first = await ask(upstream, messages, stream=stream)
    thinking, call = first["content"][0], first["content"][-1]
    assert thinking["type"] == "thinking" and call["type"] == "tool_use"
    edited = {**thinking, "signature": _edited(thinking["signature"])}
    messages += [
        {"role": "assistant", "content": [edited, call]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "1"}]},
    ]
    answer = await ask(upstream, messages, stream=stream)
    assert answer["content"][-1]["type"] == "tool_use"
    sent = model.requests[-1]
    assert len(model.requests) == 2 and model.refusals == [], "dropped by the gateway, not by a retry"
    assert sent.reasoning_items() == []
    assert [item.get("type") or item["role"] for item in sent.input] == [
        "user",
        "function_call",
        "function_call_output",
    ]
    assert_valid_responses_request(sent.body)


async def test_an_envelope_another_gateway_sealed_is_not_sent_upstream(upstream: FakeUpstream) -> None:
    """The same upstream organisation (it would accept the reasoning), but the envelope was sealed under
    another master key: this gateway cannot vouch for it, so the item is left out."""
    model = FakeResponsesModel(SCRIPT)
    upstream.handle(RESPONSES_PATH, model)
    other = anygate.Gateway(Config(deployments=(), general=GeneralSettings(master_key="sk-another-gateway")))
    try:
        first = await other.messages.acreate(
            model="openai/responses/gpt-5",
            messages=[{"role": "user", "content": "Add things."}],
            max_tokens=1000,
            tools=TOOLS,
            thinking={"type": "enabled", "budget_tokens": 4096},
            api_base=f"{upstream.url}/v1",
            api_key=UPSTREAM_KEY,
        )
    finally:
        await other.aclose()
    content = [block.model_dump(exclude_none=True) for block in first.content]
    assert content[0]["type"] == "thinking" and content[0]["signature"].startswith("anygate.v2.")
    call = content[-1]
    messages = [
        {"role": "user", "content": "Add things."},
        {"role": "assistant", "content": content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": "1"}]},
    ]
    answer = await ask(upstream, messages, stream=True)
    assert answer["content"][-1]["type"] == "tool_use"
    sent = model.requests[-1]
    assert len(model.requests) == 2 and model.refusals == []
    assert sent.reasoning_items() == []
    assert [item.get("type") or item["role"] for item in sent.input] == [
        "user",
        "function_call",
        "function_call_output",
    ]
