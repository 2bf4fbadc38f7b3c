"""Tool input schemas as Gemini takes them in ``parametersJsonSchema``.

Gemini accepts most of JSON Schema in ``parametersJsonSchema`` but rejects a ``$schema`` declaration and
does not resolve references reliably, so local ``$ref`` (``#/$defs/…``, ``#/definitions/…``) are inlined
and the definitions dropped. A recursive reference cannot be inlined: from its second appearance on a
path it becomes an open object, which is as much as Gemini could check anyway.
"""

from __future__ import annotations

from typing import Any, Final

DROPPED_KEYWORDS: Final = frozenset({"$schema", "$id", "$defs", "definitions"})
"""Keywords removed everywhere once references are inlined."""
_LOCAL_REF_PREFIXES: Final = ("#/$defs/", "#/definitions/")


def gemini_schema(schema: object) -> dict[str, Any]:
    """The schema to send as ``parametersJsonSchema`` (a new object; the input is not changed)."""
    if not isinstance(schema, dict):
        return {"type": "object", "properties": {}}
    definitions: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        found = schema.get(key)
        if isinstance(found, dict):
            definitions.update(found)
    cleaned = _clean(schema, definitions, ())
    return cleaned if isinstance(cleaned, dict) else {"type": "object", "properties": {}}


def _clean(node: Any, definitions: dict[str, Any], seen: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_clean(item, definitions, seen) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_LOCAL_REF_PREFIXES):
        name = ref.rsplit("/", 1)[1]
        target = definitions.get(name)
        if name in seen or not isinstance(target, dict):
            return {"type": "object"}
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return _clean({**target, **siblings}, definitions, (*seen, name))
    return {
        key: _clean(value, definitions, seen) for key, value in node.items() if key not in DROPPED_KEYWORDS
    }
