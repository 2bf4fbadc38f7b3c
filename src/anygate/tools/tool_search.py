"""Tool search run by the gateway: deferred tools stay out of the model's prompt until it finds them.

Anthropic's API lets a request mark tools ``defer_loading: true`` and add a tool search tool; the model
then sees only the other tools, searches the deferred ones, and the API loads what the search found.
Other upstreams know none of this. For them the gateway replaces the search tool with an ordinary
function (:func:`model_function`), runs the search itself (:func:`search_tools`), answers the client
with Anthropic's ``server_tool_use`` + ``tool_search_tool_result`` blocks (:func:`result_block`), tells
the model what was loaded (:func:`render_result_block`), and sends the upstream the deferred tools that
the conversation has loaded so far (:func:`loaded_tool_names`, :func:`upstream_tools`). The loop that
calls these lives in :mod:`anygate.tools.loop`; this module is pure logic.

Facts relied on (Anthropic's "Tool search tool" page, the OpenAPI spec's ``ToolSearchTool*`` schemas,
and Anthropic's 400 answers as quoted in public bug reports):

- Tool types: ``tool_search_tool_regex_20251119`` / ``tool_search_tool_regex`` and
  ``tool_search_tool_bm25_20251119`` / ``tool_search_tool_bm25``; their ``name`` is the constant
  ``tool_search_tool_regex`` / ``tool_search_tool_bm25``.
- Input the model gives: regex ``{"pattern": str}``, a Python ``re.search()`` pattern matched
  case-insensitively, at most 200 characters; BM25 ``{"query": str}``, natural language, at most 500
  characters.
- Both search tool names, descriptions, argument names and argument descriptions. A search returns up
  to 5 tools; one that matches nothing returns an empty ``tool_references`` list, not an error.
- ``ToolSearchToolResultErrorCode``: ``invalid_tool_input`` (malformed pattern, input over its limit),
  ``unavailable`` (the search could not run), ``too_many_requests`` (rate limited),
  ``execution_time_exceeded`` (the search ran past its time limit). The error carries an
  ``error_message`` such as ``Invalid regular expression pattern: missing ) at position 1``.
- At most 10,000 deferred tools per request. 400s: every tool deferred (``At least one tool must have
  defer_loading=false. All tools cannot be deferred.``), a ``tool_reference`` to a tool the request
  does not define (``Tool reference 'x' not found in available tools``), a deferred tool with
  ``cache_control``. The search tool itself must never be deferred (documented; the wording of that
  400 is not, so :data:`SEARCH_TOOL_DEFERRED` is the gateway's own).
- Deferred tools without a tool search tool are valid: a client may run its own search and return
  ``tool_reference`` blocks inside an ordinary ``tool_result`` (Claude Code does), so that is not refused.

Pathological regular expressions: the pattern comes from the model, which a prompt injection can steer,
and Python's ``re`` has no time limit and holds the GIL while it backtracks, so neither a worker thread
nor a length limit bounds ``(a|aa)+$``. The pattern is therefore validated by ``re`` (so the dialect and
the error messages are Python's) and run by the ``regex`` package in its ``re``-compatible mode with a
deadline (:data:`SEARCH_DEADLINE`, checked inside the matcher, with the GIL released): a search that
runs out of time answers ``execution_time_exceeded``. Each searched text is also capped
(:data:`FIELD_CHARS`, :data:`FIELDS_PER_TOOL`). Run :func:`search_tools` through ``asyncio.to_thread``
so even a slow search never holds the event loop.

BM25 is implemented here (Okapi BM25, Lucene's idf): ``bm25s`` and ``rank-bm25`` both need numpy, which
the gateway does not otherwise install, and rank-bm25 is unmaintained; a catalogue of at most 10,000
short documents needs forty lines, which the tests check against the formula by hand.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

import regex

from anygate.protocol.errors import invalid_request

Kind = Literal["regex", "bm25"]
ErrorCode = Literal["invalid_tool_input", "unavailable", "too_many_requests", "execution_time_exceeded"]

TOOL_SEARCH_TYPES: Final[Mapping[str, Kind]] = {
    "tool_search_tool_regex_20251119": "regex",
    "tool_search_tool_regex": "regex",
    "tool_search_tool_bm25_20251119": "bm25",
    "tool_search_tool_bm25": "bm25",
}
"""A tool search tool's ``type`` → the search it runs."""
DEFAULT_NAMES: Final[Mapping[Kind, str]] = {
    "regex": "tool_search_tool_regex",
    "bm25": "tool_search_tool_bm25",
}
"""The ``name`` Anthropic's spec fixes for each kind."""
INPUT_FIELDS: Final[Mapping[Kind, str]] = {"regex": "pattern", "bm25": "query"}
"""The field of ``server_tool_use.input`` that carries the search."""
INPUT_LIMITS: Final[Mapping[Kind, int]] = {"regex": 200, "bm25": 500}
"""Anthropic's maximum length (characters) of a pattern and of a query."""
MAX_RESULTS: Final = 5
"""Tools one search loads at most."""
MAX_DEFERRED_TOOLS: Final = 10_000
"""Deferred tools a request may carry."""
SEARCH_DEADLINE: Final = 3.0
"""Seconds a search may take before it answers ``execution_time_exceeded``. An honest search is far
quicker (about 10 ms over 200 tools, under a second over 10,000 on one core); only a pathological
pattern gets near it."""
FIELD_CHARS: Final = 10_000
"""Characters of one searched text (a name, a description…) that a search reads."""
FIELDS_PER_TOOL: Final = 256
"""Argument names and descriptions read per tool (nested schemas included)."""
SCHEMA_DEPTH: Final = 8
"""How deep into a tool's input schema argument names and descriptions are collected."""

ALL_DEFERRED: Final = "At least one tool must have defer_loading=false. All tools cannot be deferred."
SEARCH_TOOL_DEFERRED: Final = "Tool '{name}' is a tool search tool and cannot have defer_loading=true."
TOO_MANY_DEFERRED: Final = "Too many tools with defer_loading=true: {count} (the maximum is {limit})."
DEFERRED_WITH_CACHE: Final = (
    "Tool '{name}' cannot both defer_loading=true cache_control set. "
    "Tools defer_loading cannot use prompt caching."
)
UNKNOWN_REFERENCE: Final = "Tool reference '{name}' not found in available tools"
"""The 400 messages of :func:`check_request`: Anthropic's wording, except for SEARCH_TOOL_DEFERRED and
TOO_MANY_DEFERRED, whose wording Anthropic does not document."""

ERROR_EXPLANATIONS: Final[Mapping[str, str]] = {
    "invalid_tool_input": "the search input was invalid; correct it and search again",
    "unavailable": "the search could not run; try again later",
    "too_many_requests": "too many searches; wait before searching again",
    "execution_time_exceeded": "the search took too long and was stopped; use a simpler search",
}
"""What the model reads for each error code, before the error's own message."""

_SCHEMA_NESTING: Final = frozenset(
    {"properties", "items", "additionalProperties", "not", "anyOf", "oneOf", "allOf", "prefixItems", "$defs",
     "definitions"}
)  # fmt: skip
"""JSON-schema keys under which argument names and descriptions can be nested."""


@dataclass(frozen=True, slots=True)
class ToolSearchError:
    """A search that could not run: the ``tool_search_tool_result_error`` the client and model get."""

    code: ErrorCode
    message: str | None = None


def tool_search_kind(tool: object) -> Kind | None:
    """The search a tool definition asks for, or None when it is not a tool search tool. A newer
    version of a known type (``tool_search_tool_regex_2026…``) runs the same search: its input is the
    same, and refusing it would break clients the day Anthropic dates a new version."""
    kind = tool.get("type") if isinstance(tool, Mapping) else None
    if not isinstance(kind, str):
        return None
    known = TOOL_SEARCH_TYPES.get(kind)
    if known is not None:
        return known
    for family, search in TOOL_SEARCH_TYPES.items():
        if kind.startswith(family + "_"):
            return search
    return None


def is_deferred(tool: object) -> bool:
    """Whether a tool definition is marked ``defer_loading: true``."""
    return isinstance(tool, dict) and tool.get("defer_loading") is True


def deferred_tools(tools: Sequence[Any]) -> list[dict[str, Any]]:
    """The request's deferred tool definitions, in request order (what :func:`search_tools` searches)."""
    return [tool for tool in tools if is_deferred(tool)]


# --- what the model sees -------------------------------------------------------------------------


def model_function(
    kind: Kind, *, name: str | None = None, deferred_count: int | None = None
) -> dict[str, Any]:
    """The function tool the model calls instead of the server tool, in Anthropic's tool format.

    ``name`` is the server tool's name (so the model's call maps back to it); ``deferred_count`` says how
    many tools can be found. The tools themselves are not listed: keeping them out of the prompt is the
    point. The input schema has the field Anthropic's ``server_tool_use.input`` has, so the client sees
    the model's arguments as it would see Claude's.
    """
    field, limit = INPUT_FIELDS[kind], INPUT_LIMITS[kind]
    available = "More tools" if deferred_count is None else f"{deferred_count} more tool"
    if deferred_count is not None and deferred_count != 1:
        available += "s"
    if kind == "regex":
        how = (
            "Search them with a Python regular expression (re.search syntax, case-insensitive, at most "
            f"{limit} characters) matched against each tool's name, description, argument names and "
            'argument descriptions, e.g. "weather", "github.*issue" or "calendar|event".'
        )
        described = (
            f"A Python regular expression, at most {limit} characters, matched case-insensitively against "
            "tool names, descriptions, argument names and argument descriptions."
        )
    else:
        how = (
            "Search them with a few natural-language keywords describing the capability you need (at most "
            f'{limit} characters), e.g. "create a github issue" or "send a slack message"; tools are '
            "ranked by how well their name, description and arguments match."
        )
        described = f"Keywords describing the tool you need, at most {limit} characters."
    description = (
        f"{available} can be loaded on demand; their definitions are kept out of your context until a "
        f"search finds them. {how} The best {MAX_RESULTS} matches are loaded and you can call them right "
        "away, in this turn and later ones. Search before saying a capability is unavailable; if nothing "
        "fits, search again with other terms."
    )
    return {
        "name": name or DEFAULT_NAMES[kind],
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": {field: {"type": "string", "description": described}},
            "required": [field],
        },
    }


def describe_loaded(names: Sequence[str]) -> str:
    """What the model reads after a search (or a client's ``tool_reference`` result) loaded ``names``."""
    if not names:
        return "No tools matched this search. Try a broader pattern or other words."
    plural = len(names) != 1
    return (
        f"Loaded {len(names)} tool{'s' if plural else ''}: {', '.join(names)}. "
        f"You can call {'them' if plural else 'it'} now."
    )


def result_block(tool_use_id: str, outcome: Sequence[str] | ToolSearchError) -> dict[str, Any]:
    """The ``tool_search_tool_result`` block answering the ``server_tool_use`` ``tool_use_id``."""
    content: dict[str, Any]
    if isinstance(outcome, ToolSearchError):
        content = {
            "type": "tool_search_tool_result_error",
            "error_code": outcome.code,
            "error_message": outcome.message,
        }
    else:
        content = {
            "type": "tool_search_tool_search_result",
            "tool_references": [{"type": "tool_reference", "tool_name": name} for name in outcome],
        }
    return {"type": "tool_search_tool_result", "tool_use_id": tool_use_id, "content": content}


def render_result_block(block: Mapping[str, Any]) -> str:
    """The ``tool_result`` text the model reads for a ``tool_search_tool_result`` block.

    Works from the block alone (a client sends it back on later turns and the gateway keeps no memory),
    and never raises: a block it cannot read is rendered as such.
    """
    content = block.get("content")
    if not isinstance(content, Mapping):
        return "The tool search returned no readable result."
    if content.get("type") == "tool_search_tool_search_result":
        references = content.get("tool_references")
        names = list(_reference_names(references)) if isinstance(references, list) else []
        return describe_loaded(names)
    if content.get("type") == "tool_search_tool_result_error":
        code = str(content.get("error_code") or "unavailable")
        explanation = ERROR_EXPLANATIONS.get(code, "the search failed")
        message = content.get("error_message")
        detail = f" ({message})" if isinstance(message, str) and message else ""
        return f"Tool search error {code}: {explanation}{detail}."
    return "The tool search returned no readable result."


# --- what the upstream gets ----------------------------------------------------------------------


def _reference_names(blocks: list[Any]) -> Iterator[str]:
    for block in blocks:
        if isinstance(block, dict) and block.get("type") == "tool_reference":
            name = block.get("tool_name")
            if isinstance(name, str):
                yield name


def _references(messages: Sequence[Any]) -> Iterator[str]:
    """Every ``tool_reference`` name in a conversation, in order: inside ``tool_search_tool_result``
    blocks (server-side search) and inside ``tool_result`` content (a client's own search).

    It reads every block of the conversation on each request that defers tools (Claude Code's with
    MCP servers), so it tests for ``dict`` (a C check), not the ``Mapping`` ABC: requests are decoded
    JSON.
    """
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for block in content:
            if not isinstance(block, dict):
                continue
            kind = block.get("type")
            if kind == "tool_result":
                inner = block.get("content")
                if isinstance(inner, list):
                    yield from _reference_names(inner)
            elif kind == "tool_search_tool_result":
                inner = block.get("content")
                if isinstance(inner, dict):
                    references = inner.get("tool_references")
                    if isinstance(references, list):
                        yield from _reference_names(references)


def loaded_tool_names(messages: Sequence[Any]) -> set[str]:
    """Names of the tools the conversation has loaded through ``tool_reference`` blocks."""
    return set(_references(messages))


def upstream_tools(tools: Sequence[Any], loaded: Collection[str]) -> list[dict[str, Any]]:
    """The request's tools as a non-Anthropic upstream should get them.

    Deferred tools are kept only when ``loaded``, and ``defer_loading`` is removed from every tool. The
    tools that are always loaded come first, in request order, and the loaded deferred tools follow in
    request order: loading a tool changes only the tail of the list, so an upstream's prefix cache keeps
    the rest. Server tool definitions (the tool search tool included) are left as they are, in place, for
    the caller to replace with their functions. The input is not modified.
    """
    always: list[dict[str, Any]] = []
    found: list[dict[str, Any]] = []
    for tool in tools:
        if not isinstance(tool, Mapping):
            continue
        deferred = is_deferred(tool)
        if deferred and tool.get("name") not in loaded:
            continue
        if "defer_loading" in tool:
            tool = {key: value for key, value in tool.items() if key != "defer_loading"}
        (found if deferred else always).append(tool)
    return always + found


def check_request(request: Mapping[str, Any]) -> set[str]:
    """Refuse, with Anthropic's 400, a request whose deferred tools Anthropic's API would refuse; the
    names its ``tool_reference`` blocks load (:func:`loaded_tool_names`, found on the way).

    Raises:
        GatewayError: 400 ``invalid_request_error`` for every tool deferred, a tool search tool
            deferred, more than :data:`MAX_DEFERRED_TOOLS` deferred tools, a deferred tool with
            ``cache_control``, or a ``tool_reference`` to a tool the request does not define.
    """
    tools = request.get("tools")
    tools = [tool for tool in tools if isinstance(tool, dict)] if isinstance(tools, list) else []
    deferred = [tool for tool in tools if is_deferred(tool)]
    if deferred:
        if len(deferred) == len(tools):
            raise invalid_request(ALL_DEFERRED)
        for tool in deferred:
            if tool_search_kind(tool) is not None:
                raise invalid_request(SEARCH_TOOL_DEFERRED.format(name=tool.get("name")))
            if tool.get("cache_control") is not None:
                raise invalid_request(DEFERRED_WITH_CACHE.format(name=tool.get("name")))
        if len(deferred) > MAX_DEFERRED_TOOLS:
            raise invalid_request(TOO_MANY_DEFERRED.format(count=len(deferred), limit=MAX_DEFERRED_TOOLS))
    messages = request.get("messages")
    loaded: set[str] = set()
    if isinstance(messages, list):
        defined = {tool.get("name") for tool in tools}
        for name in _references(messages):
            if name not in defined:
                raise invalid_request(UNKNOWN_REFERENCE.format(name=name))
            loaded.add(name)
    return loaded


# --- the search ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Fields:
    """The texts of one tool that a search reads, best field first."""

    name: str
    description: str
    argument_names: tuple[str, ...]
    argument_descriptions: tuple[str, ...]

    def tiers(self) -> tuple[tuple[str, ...], ...]:
        return ((self.name,), (self.description,), self.argument_names, self.argument_descriptions)


def _fields(tool: Mapping[str, Any]) -> _Fields:
    names: list[str] = []
    descriptions: list[str] = []

    def walk(schema: object, depth: int) -> None:
        if not isinstance(schema, Mapping) or depth > SCHEMA_DEPTH or len(names) >= FIELDS_PER_TOOL:
            return
        for key, nested in schema.items():
            if key not in _SCHEMA_NESTING:
                continue
            if key == "properties" and isinstance(nested, Mapping):
                for argument, sub in nested.items():
                    if len(names) >= FIELDS_PER_TOOL:
                        return
                    names.append(str(argument)[:FIELD_CHARS])
                    text = sub.get("description") if isinstance(sub, Mapping) else None
                    if isinstance(text, str) and text:
                        descriptions.append(text[:FIELD_CHARS])
                    walk(sub, depth + 1)
            elif key in ("$defs", "definitions") and isinstance(nested, Mapping):
                for sub in nested.values():
                    walk(sub, depth + 1)
            elif isinstance(nested, list):
                for sub in nested:
                    walk(sub, depth + 1)
            else:
                walk(nested, depth + 1)

    walk(tool.get("input_schema"), 0)
    description = tool.get("description")
    return _Fields(
        name=str(tool.get("name", ""))[:FIELD_CHARS],
        description=description[:FIELD_CHARS] if isinstance(description, str) else "",
        argument_names=tuple(names),
        argument_descriptions=tuple(descriptions),
    )


def search_tools(
    kind: Kind, tool_input: object, deferred_tools: Sequence[Any], *, deadline: float = SEARCH_DEADLINE
) -> list[str] | ToolSearchError:
    """Run the model's search over ``deferred_tools``: the names found, best first, at most
    :data:`MAX_RESULTS`; or the error Anthropic would report.

    Regex: a tool matches when the pattern is found in its name, description, an argument name or an
    argument description; tools matching in their name rank first, then in their description, then in
    an argument, each group in request order. BM25: tools ranked by their score for the query (ties in
    request order); tools sharing no word with the query are not returned. ``deadline`` (seconds) bounds
    the whole search.
    """
    field = INPUT_FIELDS[kind]
    text = tool_input.get(field) if isinstance(tool_input, Mapping) else None
    if not isinstance(text, str) or not text.strip():
        return ToolSearchError("invalid_tool_input", f"The input needs a non-empty '{field}' string.")
    limit = INPUT_LIMITS[kind]
    if len(text) > limit:
        return ToolSearchError(
            "invalid_tool_input", f"The {field} is {len(text)} characters long; the maximum is {limit}."
        )
    tools = [
        tool for tool in deferred_tools if isinstance(tool, Mapping) and isinstance(tool.get("name"), str)
    ]
    ends = time.monotonic() + deadline
    if kind == "regex":
        return _regex_search(text, tools, ends)
    return _bm25_search(text, tools, ends)


def _too_slow() -> ToolSearchError:
    return ToolSearchError("execution_time_exceeded", "The search ran past its time limit.")


def _regex_search(pattern: str, tools: list[Mapping[str, Any]], ends: float) -> list[str] | ToolSearchError:
    try:
        re.compile(pattern, re.IGNORECASE)
        compiled = regex.compile(pattern, regex.IGNORECASE | regex.VERSION0)
    except (re.error, regex.error) as exc:
        return ToolSearchError("invalid_tool_input", f"Invalid regular expression pattern: {exc}")
    ranked: list[tuple[int, int, str]] = []
    for position, tool in enumerate(tools):
        fields = _fields(tool)
        for tier, texts in enumerate(fields.tiers()):
            try:
                if any(compiled.search(text, timeout=_left(ends), concurrent=True) for text in texts):
                    ranked.append((tier, position, fields.name))
                    break
            except TimeoutError:
                return _too_slow()
    ranked.sort()
    return [name for _, _, name in ranked[:MAX_RESULTS]]


def _left(ends: float) -> float:
    left = ends - time.monotonic()
    if left <= 0:
        raise TimeoutError
    return left


# BM25 ---------------------------------------------------------------------------------------------

BM25_K1: Final = 1.2
BM25_B: Final = 0.75
NAME_WEIGHT: Final = 2
"""A word in a tool's name counts this many times: the name says what the tool is."""
STOP_WORDS: Final = frozenset(
    "a an and any are as at be by can do for from how i in into is it its me my of on or please "
    "some that the their them then there these this to tool tools use using via want what when which "
    "with you your".split()
)
"""Words that say nothing about which tool is meant."""
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_WORD = re.compile(r"[a-z0-9]+")


@functools.lru_cache(maxsize=65536)
def _stem(word: str) -> str:
    """Plural to singular, enough for tool vocabularies (issues → issue, branches → branch)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith(("ches", "shes", "sses", "xes", "zes")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """The words BM25 compares: camelCase and snake_case split, lower case, stop words dropped."""
    words = _WORD.findall(_CAMEL.sub(" ", text).lower())
    return [_stem(word) for word in words if word not in STOP_WORDS]


def _document(fields: _Fields) -> list[str]:
    words = tokenize(fields.name) * NAME_WEIGHT + tokenize(fields.description)
    for text in fields.argument_names + fields.argument_descriptions:
        words.extend(tokenize(text))
    return words


def bm25_scores(query: Sequence[str], documents: Sequence[Sequence[str]]) -> list[float]:
    """Okapi BM25 score of each tokenized document for the tokenized query (each distinct query word
    counts once; idf is Lucene's, never negative)."""
    count = len(documents)
    if count == 0:
        return []
    average = sum(len(document) for document in documents) / count or 1.0
    frequencies = [Counter(document) for document in documents]
    terms = list(dict.fromkeys(query))
    frequency_in = {term: sum(1 for counts in frequencies if term in counts) for term in terms}
    scores: list[float] = []
    for document, counts in zip(documents, frequencies, strict=True):
        norm = BM25_K1 * (1 - BM25_B + BM25_B * len(document) / average)
        score = 0.0
        for term in terms:
            tf = counts.get(term, 0)
            if tf:
                df = frequency_in[term]
                idf = math.log(1 + (count - df + 0.5) / (df + 0.5))
                score += idf * tf * (BM25_K1 + 1) / (tf + norm)
        scores.append(score)
    return scores


def _bm25_search(query: str, tools: list[Mapping[str, Any]], ends: float) -> list[str] | ToolSearchError:
    terms = tokenize(query)
    documents: list[list[str]] = []
    names: list[str] = []
    for position, tool in enumerate(tools):
        if position % 256 == 0 and time.monotonic() > ends:
            return _too_slow()
        fields = _fields(tool)
        names.append(fields.name)
        documents.append(_document(fields))
    scores = bm25_scores(terms, documents)
    ranked = sorted((-score, position) for position, score in enumerate(scores) if score > 0)
    return [names[position] for _, position in ranked[:MAX_RESULTS]]
