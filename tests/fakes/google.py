"""A fake Google upstream that enforces what the real Gemini API and Vertex AI enforce.

It is :class:`tests.fakes.upstream.FakeUpstream` (a real HTTP server on 127.0.0.1) answering the Gemini
API (``/v1beta/models/<model>:generateContent``, ``:streamGenerateContent``, ``:countTokens``), Vertex AI
(``/v1/projects/<p>/locations/<l>/publishers/google/models/<model>:…``) and a service account's
``token_uri`` (``/token``). What it checks, with the real APIs' error bodies:

- every request body validates against google-genai's types (unknown fields are 400 INVALID_ARGUMENT);
- Vertex rejects ``functionCall.id`` / ``functionResponse.id``;
- the legacy ``parameters`` schema rejects JSON Schema keywords outside Google's OpenAPI subset, and
  ``parametersJsonSchema`` rejects ``$schema`` and ``$ref``;
- thought signatures: every signature it issued must come back on the same part (same kind, same call
  or text), an unknown one is "corrupted", and on Gemini 3 models the first function call of every
  model step of the current turn must carry one (the documented dummy is accepted);
- Vertex wants ``Authorization: Bearer`` with a token its ``/token`` endpoint issued, for a JWT
  assertion signed by the service account's key (RS256, verified with ``cryptography``).

A model is a function from the request to a :class:`Turn`; the fake signs the turn's parts as Gemini 3
does (thoughts, the first function call, the text, with a closing signed empty part when streaming).
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import ValidationError

from tests.fakes.upstream import Answer, FakeUpstream, Json, Received, Sse
from tests.providers.gemini_support import assert_valid_gemini_request

GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The audience Google requires in a service account's assertion, whatever ``token_uri`` it is sent to."""
DUMMY_SIGNATURES = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")
OPENAPI_SCHEMA_KEYS = frozenset(
    {
        "type",
        "format",
        "title",
        "description",
        "nullable",
        "enum",
        "maxItems",
        "minItems",
        "properties",
        "required",
        "minProperties",
        "maxProperties",
        "minLength",
        "maxLength",
        "pattern",
        "example",
        "anyOf",
        "propertyOrdering",
        "default",
        "items",
        "minimum",
        "maximum",
    }
)
"""The keywords of the legacy ``parameters`` field (Google's OpenAPI 3.0 subset)."""
MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to work "
    "correctly, and missing thought_signature may lead to degraded model performance. Additional data, "
    "function call `default_api:{name}` , position {position}. Please refer to "
    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)
CORRUPTED_SIGNATURE = "Corrupted thought signature."
_MODEL_PATH = re.compile(r"/models/(?P<model>[^/:]+):(?P<method>\w+)$")
_ids = itertools.count(1)


@dataclass
class Call:
    name: str
    args: dict[str, Any]


@dataclass
class Turn:
    """One model answer: thoughts, text, function calls (parallel when several)."""

    thought: str = ""
    text: str = ""
    calls: list[Call] = field(default_factory=list)
    finish_reason: str = "STOP"


Model = Callable[["GeminiRequest"], Turn]


class GeminiRequest:
    """A received ``generateContent`` request with the questions a scripted model asks about it."""

    def __init__(self, received: Received, model: str) -> None:
        self.received = received
        self.model = model
        self.body: dict[str, Any] = received.json()
        self.contents: list[dict[str, Any]] = self.body["contents"]

    @property
    def turn(self) -> int:
        return sum(1 for c in self.contents if c["role"] == "model")

    def function_responses(self) -> list[dict[str, Any]]:
        return [p["functionResponse"] for p in self.contents[-1]["parts"] if "functionResponse" in p]

    def tool_names(self) -> list[str]:
        return [d["name"] for t in self.body.get("tools") or [] for d in t.get("functionDeclarations") or []]


class ServiceAccount:
    """A generated service account whose key the fake token endpoint trusts."""

    def __init__(self, token_uri: str, project: str = "fake-project") -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.token_uri = token_uri
        self.project = project
        self.email = "anygate-test@fake-project.iam.gserviceaccount.com"

    def info(self) -> dict[str, Any]:
        pem = self.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()
        return {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": "key-1",
            "private_key": pem,
            "client_email": self.email,
            "client_id": "1",
            "token_uri": self.token_uri,
        }

    def verify(self, assertion: str) -> dict[str, Any] | None:
        try:
            header, payload, signature = assertion.split(".")
            self.key.public_key().verify(
                _unb64(signature), f"{header}.{payload}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except Exception:
            return None
        claims: dict[str, Any] = orjson.loads(_unb64(payload))
        return claims


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature() -> str:
    return base64.b64encode(secrets.token_bytes(24)).decode()


class FakeGoogle:
    """Gemini API, Vertex AI and a token endpoint on one loopback server."""

    def __init__(self, *, vertex_project: str = "fake-project", vertex_location: str = "us-central1") -> None:
        self.server = FakeUpstream()
        self.models: dict[str, Model] = {}
        self.errors: list[str] = []
        self.rejections: list[str] = []
        self.issued: dict[str, tuple[str, str]] = {}
        """signature → (part kind, fingerprint of the part it was issued on)."""
        self.tokens: set[str] = set()
        self.token_requests = 0
        self.vertex_project = vertex_project
        self.vertex_location = vertex_location
        self.account: ServiceAccount | None = None

    def start(self) -> FakeGoogle:
        self.server.start()
        self.server.handle("/token", self._token)
        self.account = ServiceAccount(self.server.url + "/token", self.vertex_project)
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def gemini_api_base(self) -> str:
        return self.server.url + "/v1beta"

    def model(self, name: str, model: Model) -> None:
        """Serve ``name`` on both the Gemini API and Vertex paths."""
        self.models[name] = model
        for method in ("generateContent", "streamGenerateContent", "countTokens"):
            self.server.handle(f"/v1beta/models/{name}:{method}", self._gemini)
            vertex = f"/v1/projects/{self.vertex_project}/locations/{self.vertex_location}"
            self.server.handle(f"{vertex}/publishers/google/models/{name}:{method}", self._vertex)

    def requests(self) -> list[GeminiRequest]:
        out = []
        for received in self.server.received:
            match = _MODEL_PATH.search(received.path)
            if match and match["method"] != "countTokens" and received.method == "POST":
                out.append(GeminiRequest(received, match["model"]))
        return out

    # --- endpoints -------------------------------------------------------------------------------

    def _token(self, received: Received) -> Answer:
        self.token_requests += 1
        form = dict(urllib.parse.parse_qsl(received.body.decode()))
        assert self.account is not None
        claims = self.account.verify(form.get("assertion", ""))
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or claims is None:
            return Json({"error": "invalid_grant", "error_description": "Invalid JWT Signature."}, status=400)
        if claims.get("aud") != GOOGLE_TOKEN_AUDIENCE or claims.get("iss") != self.account.email:
            return Json({"error": "invalid_grant", "error_description": "Invalid JWT audience."}, status=400)
        if "https://www.googleapis.com/auth/cloud-platform" not in str(claims.get("scope", "")).split():
            return Json({"error": "invalid_scope", "error_description": "Invalid OAuth scope."}, status=400)
        if claims.get("exp", 0) < time.time():
            return Json({"error": "invalid_grant", "error_description": "Invalid JWT: expired."}, status=400)
        token = f"ya29.fake-{next(_ids)}-{secrets.token_hex(8)}"
        self.tokens.add(token)
        return Json({"access_token": token, "expires_in": 3600, "token_type": "Bearer"})

    def _gemini(self, received: Received) -> Answer:
        if received.headers.get("x-goog-api-key") != "gemini-test-key":
            return _error(
                400,
                "INVALID_ARGUMENT",
                "API key not valid. Please pass a valid API key.",
                [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}],
            )
        return self._serve(received, vertex=False)

    def _vertex(self, received: Received) -> Answer:
        token = received.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        return self._serve(received, vertex=True)

    def _serve(self, received: Received, *, vertex: bool) -> Answer:
        match = _MODEL_PATH.search(received.path)
        assert match is not None
        name, method = match["model"], match["method"]
        try:
            body = received.json()
            if method == "countTokens":
                inner = body.get("generateContentRequest", body)
                return Json({"totalTokens": max(1, len(orjson.dumps(inner)) // 4)})
            problem = self._check(body, name, vertex=vertex)
            if problem is not None:
                self.rejections.append(problem)
                return _error(400, "INVALID_ARGUMENT", problem)
            turn = self.models[name](GeminiRequest(received, name))
        except Exception as exc:
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return _error(500, "INTERNAL", f"the scripted model failed: {exc}")
        prompt = max(1, len(received.body) // 4)
        stream = method == "streamGenerateContent"
        return self._answer(turn, name, prompt, stream=stream)

    # --- what the real APIs enforce ----------------------------------------------------------------

    def _check(self, body: dict[str, Any], model: str, *, vertex: bool) -> str | None:
        try:
            assert_valid_gemini_request(body)
        except (AssertionError, ValidationError) as exc:
            return f"Invalid JSON payload received. {str(exc).splitlines()[0]}"
        for tool in body.get("tools") or []:
            for declaration in tool.get("functionDeclarations") or []:
                problem = _schema_problem(declaration)
                if problem:
                    return problem
        contents = body["contents"]
        for i, content in enumerate(contents):
            for j, part in enumerate(content["parts"]):
                for key, wire in (
                    ("functionCall", "function_call"),
                    ("functionResponse", "function_response"),
                ):
                    if vertex and "id" in part.get(key, {}):
                        return (
                            f'Invalid JSON payload received. Unknown name "id" at '
                            f"'contents[{i}].parts[{j}].{wire}': Cannot find field."
                        )
                signature = part.get("thoughtSignature")
                if signature is None or signature in DUMMY_SIGNATURES:
                    continue
                if content["role"] != "model" or self.issued.get(signature) != _fingerprint(part):
                    return CORRUPTED_SIGNATURE
        version = re.search(r"gemini-(\d+)", model)
        if version is not None and int(version[1]) >= 3:
            return _missing_signature(contents)
        return None

    def _answer(self, turn: Turn, model: str, prompt: int, *, stream: bool) -> Answer:
        parts: list[dict[str, Any]] = []
        if turn.thought:
            parts.append(
                {
                    "text": turn.thought,
                    "thought": True,
                    "thoughtSignature": self._issue("thought", turn.thought),
                }
            )
        if turn.text:
            parts.append({"text": turn.text})
        for position, call in enumerate(turn.calls):
            part: dict[str, Any] = {"functionCall": {"name": call.name, "args": call.args}}
            if position == 0:
                part["thoughtSignature"] = self._issue("call", _call_print(part["functionCall"]))
            parts.append(part)
        if turn.text and not turn.calls:
            closing = {"text": "", "thoughtSignature": self._issue("empty", "")}
            if stream:
                parts.append(closing)
            else:  # a whole answer carries the signature on its text part
                parts[-1]["thoughtSignature"] = self._retag(closing["thoughtSignature"], "text", turn.text)
        output = max(1, (len(turn.text) + len(str(turn.calls))) // 4)
        usage = {
            "promptTokenCount": prompt,
            "candidatesTokenCount": output,
            "totalTokenCount": prompt + output,
            "thoughtsTokenCount": len(turn.thought) // 4,
        }
        base = {"modelVersion": model, "responseId": f"resp-{next(_ids)}"}
        if not stream:
            candidate = {
                "content": {"role": "model", "parts": parts},
                "finishReason": turn.finish_reason,
                "index": 0,
            }
            return Json({"candidates": [candidate], "usageMetadata": usage, **base})
        chunks = []
        for i, part in enumerate(parts):
            candidate = {"content": {"role": "model", "parts": [part]}, "index": 0}
            if i == len(parts) - 1:
                candidate["finishReason"] = turn.finish_reason
            chunks.append({"candidates": [candidate], "usageMetadata": usage, **base})
        if not chunks:
            chunks.append(
                {
                    "candidates": [
                        {"content": {"role": "model", "parts": []}, "finishReason": turn.finish_reason}
                    ],
                    "usageMetadata": usage,
                    **base,
                }
            )
        return Sse([b"data: " + orjson.dumps(c) + b"\r\n\r\n" for c in chunks])

    def _issue(self, kind: str, content: str) -> str:
        signature = _signature()
        self.issued[signature] = (kind, content)
        return signature

    def _retag(self, signature: str, kind: str, content: str) -> str:
        self.issued[signature] = (kind, content)
        return signature


def _call_print(call: dict[str, Any]) -> str:
    """What a call's signature is bound to: the function (clients may add defaults to the arguments they
    echo back, as Claude Code does for Edit's ``replace_all``)."""
    return str(call["name"])


def _fingerprint(part: dict[str, Any]) -> tuple[str, str]:
    if "functionCall" in part:
        return "call", _call_print(part["functionCall"])
    if part.get("thought"):
        return "thought", part.get("text", "")
    return ("text", part["text"]) if part.get("text") else ("empty", "")


def _missing_signature(contents: list[dict[str, Any]]) -> str | None:
    """Gemini 3: the first function call of each model step since the user's last message needs one."""
    start = 0
    for position, content in enumerate(contents):
        if content["role"] == "user" and any("functionResponse" not in p for p in content["parts"]):
            start = position + 1
    for content in contents[start:]:
        if content["role"] != "model":
            continue
        calls = [(j, p) for j, p in enumerate(content["parts"]) if "functionCall" in p]
        if calls and "thoughtSignature" not in calls[0][1]:
            return MISSING_SIGNATURE.format(
                name=calls[0][1]["functionCall"]["name"], position=calls[0][0] + 1
            )
    return None


def _schema_problem(declaration: dict[str, Any]) -> str | None:
    legacy = declaration.get("parameters")
    if legacy is not None:
        bad = _keys_outside(legacy, OPENAPI_SCHEMA_KEYS)
        if bad:
            where = "tools[0].function_declarations[0].parameters"
            return f"Invalid JSON payload received. Unknown name \"{bad}\" at '{where}': Cannot find field."
    modern = declaration.get("parametersJsonSchema")
    if isinstance(modern, dict):
        if "$schema" in modern:
            return "Invalid JSON payload received. parameters_json_schema must not declare $schema"
        if "$ref" in orjson.dumps(modern).decode():
            return "Invalid function declaration: $ref is not supported in parameters_json_schema"
    return None


def _keys_outside(schema: Any, allowed: frozenset[str]) -> str | None:
    if isinstance(schema, list):
        for item in schema:
            found = _keys_outside(item, allowed)
            if found:
                return found
        return None
    if not isinstance(schema, dict):
        return None
    for key, value in schema.items():
        if key not in allowed:
            return key
        if key == "properties" and isinstance(value, dict):
            for inner in value.values():
                found = _keys_outside(inner, allowed)
                if found:
                    return found
        elif key in ("items", "anyOf"):
            found = _keys_outside(value, allowed)
            if found:
                return found
    return None


def _error(code: int, status: str, message: str, details: list[dict[str, Any]] | None = None) -> Json:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return Json({"error": error}, status=code)


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
