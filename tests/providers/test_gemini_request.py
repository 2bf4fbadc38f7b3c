"""Anthropic requests → Gemini bodies, every one validated against google-genai's types; thought
signatures back on the part they came on, across any number of turns."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anygate.protocol.accumulate import accumulate
from anygate.protocol.errors import GatewayError
from anygate.providers.google.schema import gemini_schema
from anygate.providers.google.signatures import DUMMY_SIGNATURE
from anygate.providers.google.thinking import thinking_config
from anygate.signing import ThinkingSigner
from tests.providers.gemini_support import GEMINI, body_of, parse, prepare, stream_bytes, translate

TOOLS = [
    {
        "name": "get_weather",
        "description": "Weather",
        "input_schema": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"city": {"$ref": "#/$defs/City"}},
            "required": ["city"],
            "$defs": {"City": {"type": "string", "description": "a city"}},
        },
    },
    {"name": "read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}},
    {"type": "web_search_20250305", "name": "web_search"},
]


def request(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "client-model", "max_tokens": 200, "messages": list(messages), **extra}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def assistant(content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": content}


def test_system_roles_and_generation_config() -> None:
    body = body_of(
        request(
            user("Hello"),
            assistant("Hi!"),
            user([{"type": "text", "text": "More"}]),
            system=[
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=1"},
                {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}},
            ],
            temperature=0.2,
            top_p=0.9,
            top_k=5,
            stop_sequences=["END"],
            context_management={"edits": []},
            metadata={"user_id": "u"},
        )
    )
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["generationConfig"] == {
        "maxOutputTokens": 200, "temperature": 0.2, "topP": 0.9, "topK": 5, "stopSequences": ["END"],
    }  # fmt: skip
    assert "context_management" not in orjson.dumps(body).decode()


def test_images_and_documents() -> None:
    blocks = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw=="}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
        {"type": "document", "source": {"type": "url", "url": "https://example.com/paper.pdf"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}},
    ]
    gemini = body_of(request(user(blocks)))["contents"][0]["parts"]
    assert gemini[0] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw=="}}
    assert gemini[1] == {"text": "[Image: https://example.com/cat.jpg]"}
    assert gemini[2] == {"inlineData": {"mimeType": "application/pdf", "data": "JVBERi0="}}
    assert gemini[4] == {"text": "notes"}
    vertex = body_of(request(user(blocks)), backend="vertex", model="gemini-2.5-pro")["contents"][0]["parts"]
    assert vertex[1] == {"fileData": {"mimeType": "image/jpeg", "fileUri": "https://example.com/cat.jpg"}}
    assert vertex[3] == {
        "fileData": {"mimeType": "application/pdf", "fileUri": "https://example.com/paper.pdf"}
    }


def test_tools_schemas_and_choice() -> None:
    body = body_of(request(user("hi"), tools=TOOLS, tool_choice={"type": "tool", "name": "read"}))
    declarations = body["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declarations] == ["get_weather", "read"]  # the server tool is dropped
    assert declarations[0]["parametersJsonSchema"] == {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "a city"}},
        "required": ["city"],
    }
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["read"]}}
    for kind, mode in (("auto", "AUTO"), ("any", "ANY"), ("none", "NONE")):
        config = body_of(request(user("hi"), tools=TOOLS, tool_choice={"type": kind}))["toolConfig"]
        assert config == {"functionCallingConfig": {"mode": mode}}


def test_recursive_refs_are_cut() -> None:
    schema = {
        "type": "object",
        "properties": {"node": {"$ref": "#/definitions/Node"}},
        "definitions": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/definitions/Node"}}}},
    }
    assert gemini_schema(schema) == {
        "type": "object",
        "properties": {"node": {"type": "object", "properties": {"next": {"type": "object"}}}},
    }


PARIS = {"city": "Paris"}
ON = {"type": "enabled", "budget_tokens": 2048}
HIGH = {"type": "enabled", "budget_tokens": 20000}
OMITTED = {"type": "enabled", "budget_tokens": 1024, "display": "omitted"}
SHOWN = {"includeThoughts": True}


def test_tool_results_name_the_function_and_keep_errors() -> None:
    body = body_of(
        request(
            user("weather?"),
            assistant([{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": PARIS}]),
            user([
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "boom", "is_error": True},
                {"type": "text", "text": "and?"},
            ]),
            tools=TOOLS,
        )
    )  # fmt: skip
    call, result = body["contents"][1]["parts"][0], body["contents"][2]["parts"]
    assert call["functionCall"] == {"name": "get_weather", "args": {"city": "Paris"}, "id": "toolu_1"}
    assert result[0] == {
        "functionResponse": {"name": "get_weather", "response": {"error": "boom"}, "id": "toolu_1"}
    }
    assert result[1] == {"text": "and?"}
    vertex = body_of(
        request(
            user("weather?"),
            assistant([{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}]),
            user(
                [
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_1",
                        "content": [{"type": "text", "text": "ok"}],
                    }
                ]
            ),
        ),
        backend="vertex",
        model="gemini-2.0-flash",
    )
    assert "id" not in vertex["contents"][1]["parts"][0]["functionCall"]  # Vertex rejects ids
    assert vertex["contents"][2]["parts"][0]["functionResponse"] == {
        "name": "get_weather",
        "response": {"output": "ok"},
    }


def test_a_tool_result_without_its_call_is_refused() -> None:
    with pytest.raises(GatewayError, match="toolu_x"):
        body_of(request(user([{"type": "tool_result", "tool_use_id": "toolu_x", "content": "?"}])))


@pytest.mark.parametrize(
    ("model", "thinking", "effort", "expected"),
    [
        ("gemini-2.5-flash", ON, None, {"thinkingBudget": 2048, **SHOWN}),
        ("gemini-2.5-pro", {"type": "adaptive"}, None, {"thinkingBudget": -1, **SHOWN}),
        ("gemini-2.5-flash", {"type": "disabled"}, None, {"thinkingBudget": 0}),
        ("gemini-2.5-pro", None, "low", {"thinkingBudget": 1024}),
        ("gemini-3-pro-preview", HIGH, None, {"thinkingLevel": "high", **SHOWN}),
        ("gemini-3-pro-preview", OMITTED, None, {"thinkingLevel": "low"}),
        ("gemini-3-flash-preview", {"type": "disabled"}, None, {"thinkingLevel": "minimal"}),
        ("gemini-3-flash-preview", {"type": "adaptive"}, "medium", {"thinkingLevel": "medium", **SHOWN}),
        ("gemini-3-pro-preview", None, "max", {"thinkingLevel": "high"}),
        ("gemini-2.0-flash", ON, None, None),
    ],
)  # fmt: skip
def test_thinking_config(model: str, thinking: Any, effort: str | None, expected: Any) -> None:
    req = request(user("hi"))
    if thinking is not None:
        req["thinking"] = thinking
    if effort is not None:
        req["output_config"] = {"effort": effort}
    assert thinking_config(req, model) == expected
    body_of(req, model=model)  # and the body validates


# --- signatures across turns ------------------------------------------------------------------------


def answer_of(parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP"}]}


SIGNED_PART_LISTS = [
    # a signed thought run, then a signed call and an unsigned parallel call
    [
        {"text": "Let me think.", "thought": True, "thoughtSignature": "VDEx"},
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": "QzEx"},
        {"functionCall": {"name": "read", "args": {"path": "/x"}}},
    ],
    # unsigned thoughts, a signed text part, a signed empty part, a signed call
    [
        {"text": "hmm", "thought": True},
        {"text": "Answer", "thoughtSignature": "WDEx"},
        {"text": " more"},
        {"text": "", "thoughtSignature": "RTEx"},
        {"functionCall": {"name": "read", "args": {}}, "thoughtSignature": "QzMz"},
    ],
    # a signed call with no thinking asked for
    [{"functionCall": {"name": "read", "args": {}}, "thoughtSignature": "QzIy"}],
]


def model_turn_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What must come back: the parts as sent, text runs without signatures joined."""
    return parts


@pytest.mark.parametrize("parts", SIGNED_PART_LISTS)
@pytest.mark.parametrize("backend", ["gemini", "vertex"])
def test_signatures_come_back_on_their_part(parts: list[dict[str, Any]], backend: str) -> None:
    model = "gemini-3-pro-preview"
    first = request(user("go"), tools=TOOLS[:2])
    message = parse(answer_of(parts), prepare(first, backend=backend, model=model))
    history: list[dict[str, Any]] = [user("go"), assistant(message["content"])]
    calls = [b for b in message["content"] if b["type"] == "tool_use"]
    if calls:
        history.append(
            user([{"type": "tool_result", "tool_use_id": c["id"], "content": "ok"} for c in calls])
        )
    else:
        history.append(user("thanks"))
    body = body_of(request(*history, tools=TOOLS[:2]), backend=backend, model=model)
    sent = body["contents"][1]["parts"]
    expected = []
    for part in parts:
        part = dict(part)
        if "functionCall" in part:
            part["functionCall"] = dict(part["functionCall"])
            if backend == "gemini":
                part["functionCall"]["id"] = calls[len([p for p in expected if "functionCall" in p])]["id"]
        if (
            expected
            and "text" in part
            and not part.get("thought")
            and "thoughtSignature" not in part
            and expected[-1].get("text")
            and not expected[-1].get("thought")
        ):
            expected[-1]["text"] += part["text"]
            continue
        expected.append(part)
    # unsigned text joins the text part before it, as Gemini joins streamed text
    assert sent == expected


def test_signatures_never_cross_backends_or_providers() -> None:
    parts = SIGNED_PART_LISTS[2]
    message = parse(answer_of(parts), prepare(request(user("go"), tools=TOOLS[:2]), backend="gemini"))
    history = [
        user("go"),
        assistant(message["content"]),
        user([{"type": "tool_result", "tool_use_id": message["content"][1]["id"], "content": "ok"}]),
    ]
    vertex = body_of(request(*history, tools=TOOLS[:2]), backend="vertex", model="gemini-3-pro-preview")
    # Vertex cannot verify the Gemini API's signature: the documented dummy stands in
    assert vertex["contents"][1]["parts"] == [
        {"functionCall": {"name": "read", "args": {}}, "thoughtSignature": DUMMY_SIGNATURE}
    ]
    other = ThinkingSigner("another gateway")
    forged = [
        {
            "type": "thinking",
            "thinking": "",
            "signature": other.seal("gemini", {"b": "gemini", "s": "RkZG", "on": "call"}),
        },
        {"type": "thinking", "thinking": "openai reasoning", "signature": SIGNER_SIGN("openai reasoning")},
        {"type": "thinking", "thinking": "claude", "signature": "EqQBCkgIARABGAIiQL..."},
        {"type": "tool_use", "id": "toolu_9", "name": "read", "input": {}},
    ]
    body = body_of(
        request(
            user("go"),
            assistant(forged),
            user([{"type": "tool_result", "tool_use_id": "toolu_9", "content": "ok"}]),
        ),
        model="gemini-2.5-pro",
    )
    assert body["contents"][1]["parts"] == [{"functionCall": {"name": "read", "args": {}, "id": "toolu_9"}}]


def SIGNER_SIGN(text: str) -> str:
    from tests.providers.openai_support import SIGNER

    return SIGNER.sign(text)


def test_dummy_signatures_only_for_the_current_turn_of_gemini_3() -> None:
    def history() -> list[dict[str, Any]]:
        return [
            user("first"),
            assistant([{"type": "tool_use", "id": "toolu_a", "name": "read", "input": {}}]),
            user([{"type": "tool_result", "tool_use_id": "toolu_a", "content": "1"}]),
            assistant("done"),
            user("second"),
            assistant([
                {"type": "tool_use", "id": "toolu_b", "name": "read", "input": {}},
                {"type": "tool_use", "id": "toolu_c", "name": "read", "input": {}},
            ]),
            user([
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "2"},
                {"type": "tool_result", "tool_use_id": "toolu_c", "content": "3"},
            ]),
        ]  # fmt: skip

    contents = body_of(request(*history(), tools=TOOLS[:2]))["contents"]
    assert "thoughtSignature" not in contents[1]["parts"][0]  # an earlier turn is not validated
    assert contents[5]["parts"][0]["thoughtSignature"] == DUMMY_SIGNATURE
    assert "thoughtSignature" not in contents[5]["parts"][1]  # only the first of parallel calls
    older = body_of(request(*history(), tools=TOOLS[:2]), model="gemini-2.5-flash")["contents"]
    assert all("thoughtSignature" not in p for c in older for p in c["parts"])


def _signed(part: dict[str, Any], signature: str | None) -> dict[str, Any]:
    return {**part, "thoughtSignature": signature} if signature else part


def _signatures(*choices: str) -> st.SearchStrategy[str | None]:
    return st.one_of(st.none(), st.sampled_from(choices))


THOUGHT_PARTS = st.builds(
    lambda text, sig: _signed({"text": text, "thought": True}, sig),
    st.text(min_size=1, max_size=8),
    _signatures("QUJD", "QUJDRA==", "AAAA"),
)
TEXT_PARTS = st.builds(
    lambda text, sig: _signed({"text": text}, sig), st.text(max_size=8), _signatures("REVG", "RA==", "BBBB")
)
CALL_PARTS = st.builds(
    lambda name, sig: _signed({"functionCall": {"name": name, "args": {}}}, sig),
    st.sampled_from(["read", "get_weather"]),
    _signatures("R0hJ", "Rw==", "CCCC"),
)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(THOUGHT_PARTS, TEXT_PARTS, CALL_PARTS), min_size=1, max_size=8), st.integers(1, 4))
def test_any_signed_answer_survives_any_number_of_turns(parts: list[dict[str, Any]], turns: int) -> None:
    """Every signature Gemini sent comes back, in order, on a part of the same kind, after any number of
    round trips through a stateless client; the streamed and whole answers agree."""
    model = "gemini-3-pro-preview"
    history: list[dict[str, Any]] = [user("go")]
    for _ in range(turns):
        call = prepare(request(*history, tools=TOOLS[:2]), model=model)
        frames = [b"data: " + orjson.dumps(answer_of([p])) + b"\r\n\r\n" for p in parts]
        message = accumulate(translate(frames, call))
        assert parse(answer_of(parts), call)["content"] == message["content"]
        history.append(assistant(message["content"] or [{"type": "text", "text": "."}]))
        ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
        history.append(
            user([{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in ids] or "next")
        )
    body = body_of(request(*history, tools=TOOLS[:2]), model=model)
    for content in body["contents"]:
        if content["role"] != "model" or content["parts"] == [{"text": "."}]:
            continue
        sent = [
            (kind(p), p["thoughtSignature"])
            for p in content["parts"]
            if p.get("thoughtSignature") not in (None, DUMMY_SIGNATURE)
        ]
        assert sent == [(kind(p), p["thoughtSignature"]) for p in carried_parts(parts)]


def carried_parts(parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The signed parts whose signature is carried: all but a signed empty part that closes a text
    answer (its carrier would be the message's last block; see ``CandidateAssembler.finish``)."""
    signed = [p for p in parts if p.get("thoughtSignature")]
    closing = parts[-1]
    if (
        kind(closing) == "empty"
        and closing.get("thoughtSignature")
        and not any(kind(p) == "call" for p in parts)
    ):
        signed.pop()
    return signed


def test_a_signed_empty_part_closing_a_text_answer_leaves_the_text_last() -> None:
    parts = [{"text": "Answer"}, {"text": "", "thoughtSignature": "RTEx"}]
    message = parse(answer_of(parts))
    assert [b["type"] for b in message["content"]] == ["text"]
    with_call = parse(answer_of([{"functionCall": {"name": "read", "args": {}}}, *parts[1:]]))
    assert [b["type"] for b in with_call["content"]] == ["tool_use", "thinking"]


def kind(part: dict[str, Any]) -> str:
    if "functionCall" in part:
        return "call"
    if part.get("thought"):
        return "thought"
    return "text" if part.get("text") else "empty"


def test_recorded_signed_call_round_trips() -> None:
    data = stream_bytes(GEMINI / "google-tool-call.chunks.txt")
    tools = [{"name": "weather", "input_schema": {"type": "object"}}]
    message = accumulate(translate([data], prepare(request(user("weather?"), tools=tools))))
    tool = message["content"][1]
    body = body_of(
        request(user("weather?"), assistant(message["content"]),
                user([{"type": "tool_result", "tool_use_id": tool["id"], "content": "sunny"}]), tools=tools)
    )  # fmt: skip
    recorded = orjson.loads(data.splitlines()[0].removeprefix(b"data: "))
    original = recorded["candidates"][0]["content"]["parts"][0]
    sent = body["contents"][1]["parts"][0]
    assert sent["thoughtSignature"] == original["thoughtSignature"]
    assert (
        sent["functionCall"]["name"] == "weather"
        and sent["functionCall"]["args"] == original["functionCall"]["args"]
    )


def test_gemini_state_never_reaches_another_provider() -> None:
    """The envelopes stay in the conversation; OpenAI-compatible and Anthropic upstreams never see them
    (nor Google's signatures inside them)."""
    from anygate.providers.anthropic import strip_gateway_thinking
    from tests.providers.openai_support import build

    parts = SIGNED_PART_LISTS[0]
    message = parse(answer_of(parts), prepare(request(user("go"), tools=TOOLS[:2])))
    ids = [b["id"] for b in message["content"] if b["type"] == "tool_use"]
    conversation = request(
        user("go"),
        assistant(message["content"]),
        user([{"type": "tool_result", "tool_use_id": i, "content": "ok"} for i in ids]),
        tools=TOOLS[:2],
    )
    for preset in ("openai", "deepseek"):
        body, _, _ = build(conversation, provider=preset, model="m")
        sent = orjson.dumps(body).decode()
        assert "anygate.v2" not in sent and "QzEx" not in sent and "VDEx" not in sent
    anthropic_body = orjson.dumps(strip_gateway_thinking(conversation)).decode()
    assert "anygate.v2" not in anthropic_body
