"""Bedrock test helpers: recordings, event-stream framing, a request validator from botocore's service
model, and a fake Bedrock Runtime that checks SigV4 signatures with botocore's own signer."""

from __future__ import annotations

import base64
import datetime
import functools
import itertools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import unquote

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ParamValidationError
from botocore.session import Session
from botocore.validate import ParamValidator

from anygate.providers.bedrock.eventstream import encode_event, encode_exception
from tests.conftest import RECORDINGS
from tests.fakes.upstream import Json, Received, Sse

BEDROCK = RECORDINGS / "bedrock"
VERCEL = BEDROCK / "vercel"
EVENTSTREAMS = sorted(BEDROCK.glob("*.eventstream"))
VERCEL_STREAMS = sorted(VERCEL.glob("*.chunks.txt"))
ANTHROPIC_SSE = sorted((RECORDINGS / "anthropic").glob("*.sse"))

ACCESS_KEY = "AKIDEXAMPLEBEDROCK"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
EVENTSTREAM_TYPE = "application/vnd.amazon.eventstream"


@functools.cache
def service_model() -> Any:
    return Session().get_service_model("bedrock-runtime")


def validate_operation(operation: str, params: dict[str, Any]) -> None:
    """Raise ParamValidationError unless ``params`` fit the operation's input shape. Blob fields
    (bytes) travel as base64 text in JSON; they are decoded first, as botocore's serializer would."""
    shape = service_model().operation_model(operation).input_shape
    report = ParamValidator().validate(_blobs_decoded(params, shape), shape)
    if report.has_errors():
        raise ParamValidationError(report=report.generate_report())


def _blobs_decoded(value: Any, shape: Any) -> Any:
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        return {
            key: _blobs_decoded(item, shape.members[key]) if key in shape.members else item
            for key, item in value.items()
        }
    if kind == "list" and isinstance(value, list):
        return [_blobs_decoded(item, shape.member) for item in value]
    if kind == "blob" and isinstance(value, str):
        return base64.b64decode(value)
    return value


def converse_params(model: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"modelId": model, **body}


def vercel_events(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """A Vercel AI SDK fixture: one ``{"<eventType>": payload}`` JSON object per line."""
    events = []
    for line in path.read_text().splitlines():
        if line.strip():
            ((kind, payload),) = orjson.loads(line).items()
            events.append((kind, payload))
    return events


def frame_events(events: Iterable[tuple[str, dict[str, Any]]]) -> bytes:
    return b"".join(encode_event(kind, orjson.dumps(payload)) for kind, payload in events)


def sse_events(data: bytes) -> list[dict[str, Any]]:
    """The JSON payloads of an Anthropic SSE recording."""
    events = []
    for frame in data.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in frame.split(b"\n"):
            if line.startswith(b"data:"):
                events.append(orjson.loads(line[5:]))
    return events


def invoke_stream(events: Iterable[dict[str, Any]]) -> bytes:
    """Anthropic events as InvokeModelWithResponseStream sends them: ``chunk`` messages with base64
    ``bytes``, and Bedrock's invocation metrics in ``message_stop``."""
    out = b""
    for event in events:
        if event.get("type") == "message_stop":
            event = {
                **event,
                "amazon-bedrock-invocationMetrics": {"inputTokenCount": 1, "outputTokenCount": 1},
            }
        raw = base64.b64encode(orjson.dumps(event)).decode()
        out += encode_event("chunk", orjson.dumps({"bytes": raw, "p": "abcdefgh"}))
    return out


def exception_frame(kind: str, message: str) -> bytes:
    return encode_exception(kind, orjson.dumps({"message": message}))


# --- the fake Bedrock Runtime ---------------------------------------------------------------------------


def signature_problem(received: Received, host: str, secret: str = SECRET_KEY) -> str | None:
    """Why the request's SigV4 signature is wrong (recomputed with botocore's signer), or None."""
    authorization = received.headers.get("authorization", "")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return "missing SigV4 authorization"
    fields = dict(part.strip().split("=", 1) for part in authorization[len("AWS4-HMAC-SHA256 ") :].split(","))
    access_key, day, region, service, _ = fields["Credential"].split("/")
    signed = fields["SignedHeaders"].split(";")
    headers = {name: (host if name == "host" else received.headers.get(name, "")) for name in signed}
    stamp = received.headers.get("x-amz-date", "")
    if not stamp.startswith(day):
        return "x-amz-date does not match the credential scope"
    url = f"http://{host}{received.raw_path}"
    request = AWSRequest(method=received.method, url=url, data=received.body, headers=headers)
    token = received.headers.get("x-amz-security-token")
    signer = SigV4Auth(Credentials(access_key, secret, token), service, region)
    when = datetime.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ")
    with mock.patch("botocore.auth.get_current_datetime", return_value=when):
        signer.add_auth(request)
    expected = request.headers["Authorization"]
    if expected != authorization:
        return "The request signature we calculated does not match the signature you provided."
    if "x-amz-security-token" in received.headers and "x-amz-security-token" not in signed:
        return "x-amz-security-token is not signed"
    return None


def aws_error(kind: str, message: str, status: int) -> Json:
    return Json(
        {"message": message},
        status=status,
        headers={"x-amzn-errortype": f"{kind}:http://internal.amazon.com/"},
    )


class FakeBedrock:
    """A handler for :class:`~tests.fakes.upstream.FakeUpstream` that answers like Bedrock Runtime:
    it checks the signature (or the API key), validates Converse requests against botocore's service
    model and Claude requests the way Bedrock does, then answers with ``answer(action, received)``."""

    def __init__(
        self,
        host: str,
        answer: Callable[[str, Received], Json | Sse],
        *,
        api_key: str | None = None,
        secret: str = SECRET_KEY,
    ) -> None:
        self.host = host
        self.answer = answer
        self.api_key = api_key
        self.secret = secret
        self.rejected: list[str] = []

    def __call__(self, received: Received) -> Json | Sse:
        problem = self._problem(received)
        if problem is not None:
            self.rejected.append(problem[1])
            return aws_error(problem[0], problem[1], problem[2])
        action = received.raw_path.rsplit("/", 1)[1]
        return self.answer(action, received)

    def _problem(self, received: Received) -> tuple[str, str, int] | None:
        if self.api_key is not None:
            if received.headers.get("authorization") != f"Bearer {self.api_key}":
                return (
                    "UnrecognizedClientException",
                    "The security token included in the request is invalid.",
                    403,
                )
        else:
            why = signature_problem(received, self.host, self.secret)
            if why is not None:
                return "InvalidSignatureException", why, 403
        parts = received.raw_path.split("/")
        if len(parts) != 4 or parts[1] != "model":
            return "UnknownOperationException", "unknown operation", 404
        model, action = unquote(parts[2]), parts[3]
        body = orjson.loads(received.body)
        if action in ("converse", "converse-stream"):
            try:
                validate_operation(
                    "ConverseStream" if action.endswith("stream") else "Converse", {"modelId": model, **body}
                )
            except ParamValidationError as exc:
                return "ValidationException", str(exc), 400
        elif action in ("invoke", "invoke-with-response-stream"):
            why = claude_body_problem(body)
            if why is not None:
                return "ValidationException", why, 400
        elif action == "count-tokens":
            try:
                validate_operation("CountTokens", {"modelId": model, **body})
            except ParamValidationError as exc:
                return "ValidationException", str(exc), 400
            if model.startswith(("us.", "eu.", "global.")):
                return "ValidationException", "The provided model identifier is invalid.", 400
        return None


CLAUDE_BODY_FIELDS = frozenset(
    {
        "anthropic_version",
        "anthropic_beta",
        "messages",
        "system",
        "max_tokens",
        "metadata",
        "stop_sequences",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "thinking",
        "context_management",
        "output_config",
    }
)
BEDROCK_ACCEPTED_BETAS = frozenset(
    {"interleaved-thinking-2025-05-14", "context-1m-2025-08-07", "context-management-2025-06-27"}
)


def claude_body_problem(body: dict[str, Any]) -> str | None:
    """What Bedrock's Claude InvokeModel refuses (a subset that catches what gateways get wrong)."""
    if body.get("anthropic_version") != "bedrock-2023-05-31":
        return "anthropic_version: bedrock-2023-05-31 is required"
    extra = sorted(set(body) - CLAUDE_BODY_FIELDS)
    if extra:
        return f"extraneous key [{extra[0]}] is not permitted"
    for beta in body.get("anthropic_beta") or ():
        if beta not in BEDROCK_ACCEPTED_BETAS:
            return "invalid beta flag"
    for tool in body.get("tools") or ():
        if "defer_loading" in tool:
            return "tools.0.custom.defer_loading: Extra inputs are not permitted"
    return None


def eventstream_answer(data: bytes, pause: float = 0.0) -> Sse:
    """An event-stream answer, sent in a few uneven pieces."""
    cuts = sorted(
        {min(max(cut, 0), len(data)) for cut in (0, 7, 50, len(data) // 2, len(data) - 3, len(data))}
    )
    pieces = [data[a:b] for a, b in itertools.pairwise(cuts)]
    return Sse(pieces, headers={"content-type": EVENTSTREAM_TYPE}, pause=pause)
