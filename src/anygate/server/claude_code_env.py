"""``anygate claude-code-env``: the shell environment that points Claude Code at this gateway.

    eval "$(anygate claude-code-env --config config.yaml)"
    claude

It prints ``export`` lines derived from the config the gateway serves: the base URL, the credential, the
model names Claude Code should ask for, and the context window and output limit of those models (Claude
Code cannot know them for a non-Claude backend, and assumes a 1M-token window and up to 128k output
tokens unless told). The master key is a secret, so by default the credential line refers to it
(``$ANYGATE_MASTER_KEY`` or the variable the config reads it from) instead of printing it; ``--show-key``
prints the value.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import shlex
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from anygate.config import DEFAULT_CONFIG, ENV_PREFIX, MASTER_KEY_ENV, Config, ConfigError, load_config
from anygate.routing.names import ModelNames

MASTER_KEY_VARIABLE: Final = MASTER_KEY_ENV
NO_KEY_TOKEN: Final = "anygate-no-master-key"
"""Sent when the gateway has no master key: it accepts any key, but Claude Code wants one."""
UNSPECIFIED_HOSTS: Final = frozenset({"0.0.0.0", "::", ""})
"""Bind addresses that mean "every interface"; a client on this machine reaches them on loopback."""

CLAUDE_CODE_FAMILIES: Final[tuple[tuple[str, str], ...]] = (
    ("OPUS", "claude-opus-5-5"),
    ("SONNET", "claude-sonnet-5-5"),
    ("HAIKU", "claude-haiku-5-5"),
)
"""Claude Code's model families and the name it asks for by default in each (version 2.1.328)."""
MAIN_FAMILY: Final = "OPUS"
"""The family of Claude Code's default main model."""


@dataclass(frozen=True, slots=True)
class Choice:
    """The model name Claude Code should use for one family, and why."""

    family: str
    name: str
    reason: str
    model_info: Mapping[str, Any]


class _EnvironmentWithBlanks(Mapping[str, str]):
    """The process environment, where a missing variable reads as empty instead of stopping the load.

    The exports depend only on model names and limits, so a shell without the upstream keys set (they
    belong to the gateway's environment, not the user's) can still print them.
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def __getitem__(self, name: str) -> str:
        return self._environ.get(name, "")

    def __contains__(self, name: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._environ)

    def __len__(self) -> int:
        return len(self._environ)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="anygate claude-code-env",
        description=(
            "Print the export lines that point Claude Code at an anygate serving FILE. "
            'Use: eval "$(anygate claude-code-env --config FILE)"'
        ),
    )
    parser.add_argument(
        "--config", "-c", metavar="FILE", help="the config the gateway serves (default: built-in)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="the address the gateway binds (default 127.0.0.1)"
    )
    parser.add_argument("--port", "-p", type=int, default=4000, help="the gateway's port (default 4000)")
    parser.add_argument(
        "--show-key", action="store_true", help="print the master key itself instead of a reference to it"
    )
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of ``anygate claude-code-env``; returns the exit status."""
    args = build_parser().parse_args(argv)
    env = os.environ if environ is None else environ
    path = str(Path(args.config).resolve()) if args.config else DEFAULT_CONFIG
    try:
        config = load_config(path, env=_EnvironmentWithBlanks(env))
        master_key_reference = _master_key_reference(path)
    except ConfigError as exc:
        print(f"anygate: config error: {exc}", file=sys.stderr)
        return 2
    lines = export_lines(
        config,
        base_url=base_url(args.host, args.port),
        environ=env,
        master_key_reference=master_key_reference,
        show_key=args.show_key,
        config_path=path,
    )
    print("\n".join(lines))
    return 0


def base_url(host: str, port: int) -> str:
    """The URL a client on this machine uses to reach a gateway bound to ``host:port``."""
    if host in UNSPECIFIED_HOSTS:
        host = "127.0.0.1"
    try:
        if ipaddress.ip_address(host.strip("[]")).version == 6:
            host = f"[{host.strip('[]')}]"
    except ValueError:
        pass
    return f"http://{host}:{port}"


def _master_key_reference(path: str) -> str | None:
    """The variable named by an ``os.environ/NAME`` master key in the config file, if it is one."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from exc
    general = raw.get("general_settings") if isinstance(raw, dict) else None
    value = general.get("master_key") if isinstance(general, dict) else None
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        return value[len(ENV_PREFIX) :]
    return None


def choose_models(config: Config) -> list[Choice]:
    """The name Claude Code should ask for in each family.

    Claude Code's own default name wins when the config serves it (exactly or by a pattern such as
    ``claude-*haiku*``): nothing is renamed and the config's mapping applies. Otherwise a configured
    name containing the family's name (``my-haiku``), else the first configured name.
    """
    names = ModelNames(config.deployments, dict(config.router.model_group_alias))
    listed = names.listed_names()
    choices: list[Choice] = []
    for family, default in CLAUDE_CODE_FAMILIES:
        if names.group_name(default) is not None:
            name, reason = default, f"served by {names.group_name(default)!r}"
        else:
            named = [n for n in listed if family.lower() in n.lower()]
            if named:
                name, reason = named[0], "configured name of this family"
            elif listed:
                name, reason = listed[0], "first configured name"
            else:
                continue
        deployments = names.deployments(name)
        info = deployments[0].model_info if deployments else {}
        choices.append(Choice(family, name, reason, info))
    return choices


def _positive_int(value: object) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


def _credential_line(
    environ: Mapping[str, str],
    master_key: str | None,
    reference: str | None,
    show_key: bool,
    config_path: str,
) -> str:
    """The ``ANTHROPIC_AUTH_TOKEN`` line: the key's value only with ``--show-key``.

    The order is the gateway's own: ``ANYGATE_MASTER_KEY`` overrides ``general_settings.master_key``.
    """
    if environ.get(MASTER_KEY_VARIABLE):
        if show_key:
            return f"export ANTHROPIC_AUTH_TOKEN={shlex.quote(environ[MASTER_KEY_VARIABLE])}"
        return f'export ANTHROPIC_AUTH_TOKEN="${MASTER_KEY_VARIABLE}"'
    if show_key and master_key is not None:
        return f"export ANTHROPIC_AUTH_TOKEN={shlex.quote(master_key)}"
    if reference is not None:
        return f'export ANTHROPIC_AUTH_TOKEN="${reference}"  # the master key, as the config reads it'
    if master_key is None:
        return (
            f"export ANTHROPIC_AUTH_TOKEN={NO_KEY_TOKEN}  "
            "# the gateway has no master key and accepts any key (loopback only)"
        )
    hint = f"set {MASTER_KEY_VARIABLE} to general_settings.master_key of {config_path}, or use --show-key"
    return f'export ANTHROPIC_AUTH_TOKEN="${{{MASTER_KEY_VARIABLE}:?{hint}}}"'


def export_lines(
    config: Config,
    *,
    base_url: str,
    environ: Mapping[str, str],
    master_key_reference: str | None = None,
    show_key: bool = False,
    config_path: str = "the config",
) -> list[str]:
    """The shell lines that point Claude Code at a gateway serving ``config`` at ``base_url``."""
    lines = [
        f"# Claude Code through anygate ({config_path})",
        f"export ANTHROPIC_BASE_URL={shlex.quote(base_url)}",
        _credential_line(environ, config.general.master_key, master_key_reference, show_key, config_path),
        "unset ANTHROPIC_API_KEY  # one credential is enough (the gateway accepts the key in either header)",
    ]
    choices = choose_models(config)
    if not choices:
        lines.append("# the config serves no model names: add a model_list entry")
        return lines
    by_family = {c.family: c for c in choices}
    main = by_family.get(MAIN_FAMILY, choices[0])
    lines.append(f"export ANTHROPIC_MODEL={shlex.quote(main.name)}  # {main.reason}")
    for choice in choices:
        lines.append(
            f"export ANTHROPIC_DEFAULT_{choice.family}_MODEL={shlex.quote(choice.name)}  # {choice.reason}"
        )
    lines.append(
        "export CLAUDE_CODE_ENABLE_GATEWAY_MODEL_DISCOVERY=1  # /model lists the gateway's claude-* names"
    )
    window = _positive_int(main.model_info.get("max_input_tokens"))
    if window is not None:
        lines.append(f"export CLAUDE_CODE_AUTO_COMPACT_WINDOW={window}  # context window of {main.name}")
    outputs = [
        limit
        for c in choices
        if (limit := _positive_int(c.model_info.get("max_output_tokens") or c.model_info.get("max_tokens")))
    ]
    if outputs:
        lines.append(
            f"export CLAUDE_CODE_MAX_OUTPUT_TOKENS={min(outputs)}  # the smallest output limit of these"
        )
    lines.append("export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1  # no telemetry or update checks")
    return lines
