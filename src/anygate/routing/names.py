"""Resolving the model name a client asks for to a model group and its deployments.

The rule, in order:

1. ``router_settings.model_group_alias`` renames the request first (``claude-3-haiku`` → ``fast``).
2. A ``model_name`` equal to the request wins outright: all entries with that name form its group.
3. Otherwise ``model_name`` glob patterns (``*`` matches any run of characters, ``?`` one) are tried;
   the most specific matching pattern wins (most literal characters; ties go to the one listed first),
   and all entries with that same pattern form the group. Each ``*`` the request matched replaces, in
   order, a ``*`` in ``litellm_params.model``: ``openai/*`` → ``openai/*`` sends ``openai/gpt-4o`` as
   ``gpt-4o``; a pattern whose ``model`` has no ``*`` (``claude-*haiku*`` → ``openai/gpt-4o-mini``)
   always sends that model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from anygate.deployment import Deployment


@dataclass(frozen=True, slots=True)
class _Pattern:
    name: str
    deployments: tuple[Deployment, ...]

    def match(self, text: str) -> list[str] | None:
        return glob_match(self.name, text)


def glob_match(pattern: str, text: str) -> list[str] | None:
    """What each ``*`` and ``?`` of ``pattern`` matched in ``text``, or None when it does not match.

    A regex with a group per ``*`` backtracks: ``gpt-*-*-preview`` against a 20 KB name took seconds of
    the event loop. This is the two-pointer glob, which on a mismatch only moves the most recent ``*``
    on (earlier stars never need revisiting): at most ``len(text)`` times the length of one literal run
    of the pattern, and patterns come from the config. It runs over both strings reversed so that, like
    the greedy regex it replaces, earlier stars take the longest captures (``gpt-*-*-preview`` on
    ``gpt-4o-mini-x-preview`` captures ``4o-mini`` and ``x``).
    """
    captures = _glob_match(pattern[::-1], text[::-1])
    if captures is None:
        return None
    return [capture[::-1] for capture in reversed(captures)]


def _glob_match(pattern: str, text: str) -> list[str] | None:
    """:func:`glob_match` with the shortest captures for the earliest stars."""
    p = t = 0
    star_p = star_t = -1
    # Where each pattern position matched: start offsets of the text for '*', '?' and literals.
    starts = [0] * (len(pattern) + 1)
    plen, tlen = len(pattern), len(text)
    while t < tlen:
        if p < plen and pattern[p] == "*":
            starts[p] = t
            star_p, star_t = p, t
            p += 1
        elif p < plen and (pattern[p] == "?" or pattern[p] == text[t]):
            starts[p] = t
            p += 1
            t += 1
        elif star_p >= 0:
            star_t += 1
            p, t = star_p + 1, star_t
        else:
            return None
    while p < plen and pattern[p] == "*":
        starts[p] = t
        p += 1
    if p != plen:
        return None
    starts[plen] = tlen
    captures: list[str] = []
    for i, char in enumerate(pattern):
        if char == "*":
            captures.append(text[starts[i] : starts[i + 1]])
        elif char == "?":
            captures.append(text[starts[i]])
    return captures


def _fill(upstream_model: str, captures: Sequence[str]) -> str:
    if "*" not in upstream_model:
        return upstream_model
    pieces = upstream_model.split("*")
    out = [pieces[0]]
    for i, piece in enumerate(pieces[1:]):
        out.append(captures[i] if i < len(captures) else "")
        out.append(piece)
    return "".join(out)


class ModelNames:
    """Answers "which deployments serve this name?" for a fixed list of deployments."""

    def __init__(self, deployments: Sequence[Deployment], aliases: dict[str, str] | None = None) -> None:
        self.aliases = dict(aliases or {})
        self.exact: dict[str, list[Deployment]] = {}
        patterns: dict[str, list[Deployment]] = {}
        order: list[str] = []
        for deployment in deployments:
            name = deployment.model_name
            if "*" in name or "?" in name:
                if name not in patterns:
                    order.append(name)
                patterns.setdefault(name, []).append(deployment)
            else:
                self.exact.setdefault(name, []).append(deployment)
        ranked = sorted(order, key=lambda n: -sum(1 for c in n if c not in "*?"))
        self.patterns = tuple(_Pattern(n, tuple(patterns[n])) for n in ranked)

    def group_name(self, model: str) -> str | None:
        """The model group that serves ``model`` (its own name, or the pattern's), or None."""
        model = self.aliases.get(model, model)
        if model in self.exact:
            return model
        for pattern in self.patterns:
            if pattern.match(model) is not None:
                return pattern.name
        return None

    def deployments(self, model: str) -> list[Deployment]:
        """The deployments serving ``model``, with pattern captures filled into the upstream model."""
        model = self.aliases.get(model, model)
        exact = self.exact.get(model)
        if exact is not None:
            return exact
        for pattern in self.patterns:
            captures = pattern.match(model)
            if captures is not None:
                return [d.with_upstream_model(_fill(d.upstream_model, captures)) for d in pattern.deployments]
        return []

    def listed_names(self) -> list[str]:
        """Concrete names to list in ``/v1/models``: exact names and aliases, in config order."""
        names = list(self.exact)
        names.extend(alias for alias in self.aliases if alias not in self.exact)
        return names
