"""Typed configuration in LiteLLM's format (``model_list`` / ``litellm_params`` / ``router_settings``).

Existing LiteLLM configs load unchanged: keys anygate implements are typed here; keys LiteLLM knows that
anygate does not implement yet are accepted with one warning that lists them; anything else is an error
naming the key and its line, because a misspelt key silently ignored is a production incident later.
Values written ``os.environ/NAME`` are read from the environment at load time.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

from anygate.deployment import Deployment
from anygate.limits import LIMIT_DEFAULTS, Limits
from anygate.protocol.errors import GatewayError
from anygate.providers.registry import (
    PLANNED_PROVIDERS,
    SPECS,
    USE_RESPONSES_API,
    ParamError,
    api_variant,
    default_api_key_env,
    split_model,
)
from anygate.web_settings import WebFetchSettings, WebSearchSettings, parse_web_fetch, parse_web_search

log = logging.getLogger("anygate.config")

ENV_PREFIX: Final = "os.environ/"

# Keys anygate implements, per section.
_COST_KEYS: Final = frozenset(
    {
        "input_cost_per_token",
        "output_cost_per_token",
        "cache_read_input_token_cost",
        "cache_creation_input_token_cost",
    }
)
"""LiteLLM's per-token prices, in ``litellm_params`` or ``model_info``: they price a deployment's spend."""
_TOP_KEYS: Final = frozenset(
    {"model_list", "general_settings", "router_settings", "litellm_settings", "environment_variables"}
)
_DEPLOYMENT_KEYS: Final = frozenset({"model_name", "litellm_params", "model_info"})
_PARAM_KEYS: Final = frozenset(
    {
        "model",
        "api_base",
        "api_key",
        "api_version",
        "timeout",
        "stream_timeout",
        "max_retries",
        "extra_headers",
        "rpm",
        "tpm",
        "weight",
        "organization",
        "custom_llm_provider",
        *_COST_KEYS,
    }
)
_OBSERVABILITY_SWITCHES: Final = {"metrics": True, "metrics_public": False, "ui": True, "log_prompts": False}
"""general_settings switches of :mod:`anygate.observability`, with their defaults."""
_GENERAL_KEYS: Final = frozenset(
    {
        "master_key",
        "max_request_size_mb",
        "stream_ping_interval",
        "stream_idle_timeout",
        "database_url",
        "redis_url",
        "teams",
        "proxy_batch_write_at",
        "disable_spend_logs",
        "key_sync_interval",
        "redis_key_prefix",
        "web_search",
        "web_fetch",
        *LIMIT_DEFAULTS,
        *_OBSERVABILITY_SWITCHES,
    }
)
_ROUTER_KEYS: Final = frozenset(
    {
        "routing_strategy",
        "num_retries",
        "timeout",
        "stream_timeout",
        "retry_after",
        "allowed_fails",
        "cooldown_time",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "model_group_alias",
    }
)
_LITELLM_SETTINGS_KEYS: Final = frozenset(
    {
        "num_retries",
        "request_timeout",
        "fallbacks",
        "context_window_fallbacks",
        "content_policy_fallbacks",
        "drop_params",
    }
)

# Keys LiteLLM documents that anygate accepts without acting on them (one warning lists them).
_LITELLM_ONLY_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "top": frozenset(
        {
            "credential_list",
            "mcp_servers",
            "guardrails",
            "files_settings",
            "finetune_settings",
            "assistant_settings",
            "vector_store_registry",
            "search_tools",
            "callback_settings",
            "pass_through_endpoints",
        }
    ),
    "litellm_params": frozenset(
        {
            "input_cost_per_second",
            "output_cost_per_second",
            "tags",
            "order",
            "region_name",
            "drop_params",
            "additional_drop_params",
            "use_in_pass_through",
            "merge_reasoning_content_in_choices",
            "temperature",
            "max_tokens",
            "top_p",
            "seed",
            "stop",
            "base_model",
            "litellm_credential_name",
            "mock_response",
            "use_litellm_proxy",
            "cache_control_injection_points",
            "configurable_clientside_auth_params",
            "api_type",
            "azure_ad_token",
            "tenant_id",
            "client_id",
            "client_secret",
            "reasoning_effort",
        }
    ),
    "general_settings": frozenset(
        {
            "store_model_in_db",
            "alerting",
            "alerting_threshold",
            "disable_master_key_return",
            "master_key_required",
            "ui_access_mode",
            "allowed_routes",
            "admin_only_routes",
            "enforce_user_param",
            "background_health_checks",
            "health_check_interval",
            "max_parallel_requests",
            "global_max_parallel_requests",
            "infer_model_from_keys",
            "custom_auth",
            "max_response_size_mb",
            "database_connection_pool_limit",
            "allow_requests_on_db_unavailable",
            "disable_reset_budget",
            "forward_client_headers_to_llm_api",
            "pass_through_endpoints",
            "use_redis_transaction_buffer",
            "litellm_key_header_name",
        }
    ),
    "router_settings": frozenset(
        {
            "redis_host",
            "redis_password",
            "redis_port",
            "redis_url",
            "enable_pre_call_checks",
            "routing_strategy_args",
            "default_fallbacks",
            "provider_budget_config",
            "cache_responses",
            "disable_cooldowns",
            "retry_policy",
            "allowed_fails_policy",
            "enable_tag_filtering",
            "optional_pre_call_checks",
            "model_group_retry_policy",
            "deployment_affinity_ttl_seconds",
            "default_litellm_params",
            "max_fallbacks",
        }
    ),
    "litellm_settings": frozenset(
        {
            "callbacks",
            "success_callback",
            "failure_callback",
            "service_callback",
            "set_verbose",
            "json_logs",
            "cache",
            "cache_params",
            "default_fallbacks",
            "turn_off_message_logging",
            "telemetry",
            "redact_user_api_key_info",
            "modify_params",
            "max_budget",
            "budget_duration",
            "default_team_settings",
            "enable_preview_features",
            "force_ipv4",
            "ssl_verify",
            "request_timeout_seconds",
            "max_internal_user_budget",
            "upperbound_key_generate_params",
            "default_key_generate_params",
            "return_response_headers",
            "enable_json_schema_validation",
            "context_window_fallback_dict",
        }
    ),
}

MASTER_KEY_ENV: Final = "ANYGATE_MASTER_KEY"
"""Overrides ``general_settings.master_key``; resolved here, once, for the server, the CLI and signing."""
DEFAULT_CONFIG: Final = str(resources.files("anygate") / "default_config.yaml")
"""The built-in config: the mock model as ``anthropic-claude``, master key ``sk-1234``."""
DEFAULT_MAX_REQUEST_SIZE_MB: Final = 32.0
DEFAULT_PING_INTERVAL: Final = 10.0
DEFAULT_SPEND_FLUSH_INTERVAL: Final = 1.0
DEFAULT_KEY_SYNC_INTERVAL: Final = 0.5
DATABASE_URL_ENV: Final = "DATABASE_URL"
REDIS_URL_ENV: Final = "REDIS_URL"


def master_key_from_environment(env: Mapping[str, str] | None = None) -> str | None:
    """The master key that ``ANYGATE_MASTER_KEY`` sets (it overrides the config's)."""
    return (os.environ if env is None else env).get(MASTER_KEY_ENV) or None


class ConfigError(ValueError):
    """The config cannot be used; the message names the key, the entry and the position."""


@dataclass(frozen=True, slots=True)
class GeneralSettings:
    master_key: str | None = None
    max_request_size_mb: float = DEFAULT_MAX_REQUEST_SIZE_MB
    stream_ping_interval: float = DEFAULT_PING_INTERVAL
    stream_idle_timeout: float | None = None
    limits: Limits = field(default_factory=Limits)
    database_url: str | None = None
    """Where keys, teams, users and spend live (``DATABASE_URL``); SQLite next to the config by default."""
    redis_url: str | None = None
    """Shared limits and budgets across instances (``REDIS_URL``); without it limits are per process."""
    teams: bool | None = None
    """Virtual keys and spend on (True) or off (False); None: on when a master key and a database (or a
    config file to put the SQLite file beside) are there."""
    proxy_batch_write_at: float = DEFAULT_SPEND_FLUSH_INTERVAL
    """Seconds between spend writes: the most spend a hard kill can lose."""
    disable_spend_logs: bool = False
    """Keep per-key/team/user spend totals but no per-request spend rows."""
    key_sync_interval: float = DEFAULT_KEY_SYNC_INTERVAL
    """Seconds between checks for key, team and user changes made by other instances."""
    redis_key_prefix: str = "anygate:"
    """Prefix of every Redis key anygate writes (gateways sharing a Redis with other data)."""
    metrics: bool = True
    """Serve ``GET /metrics`` and count every request into it."""
    metrics_public: bool = False
    """Serve ``/metrics`` without a key (for a scraper on a trusted network)."""
    ui: bool = True
    """Serve the dashboard at ``/ui`` and keep the recent requests it shows."""
    log_prompts: bool = False
    """Write the request's system and messages into the JSON request log (debugging only)."""
    web_search: WebSearchSettings | None = None
    """The backend the gateway's web search tool uses; None: web search is declined."""
    web_fetch: WebFetchSettings = field(default_factory=WebFetchSettings)
    """What the gateway's web fetch tool may reach (see :mod:`anygate.web_settings`)."""


@dataclass(frozen=True, slots=True)
class RouterSettings:
    routing_strategy: str = "simple-shuffle"
    num_retries: int = 2
    timeout: float | None = None
    stream_timeout: float | None = None
    retry_after: float = 0.0
    allowed_fails: int = 3
    cooldown_time: float = 5.0
    fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    context_window_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    content_policy_fallbacks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    model_group_alias: Mapping[str, str] = field(default_factory=dict)


ROUTING_STRATEGIES: Final = frozenset({"simple-shuffle", "least-busy", "latency-based-routing"})


@dataclass(frozen=True, slots=True)
class Config:
    deployments: tuple[Deployment, ...]
    general: GeneralSettings = field(default_factory=GeneralSettings)
    router: RouterSettings = field(default_factory=RouterSettings)
    source: str = "<config>"


# --- YAML with positions -------------------------------------------------------------------------

Path_ = tuple[str | int, ...]


class _Located:
    """Plain Python values built from YAML nodes, with each node's position kept by path."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.marks: dict[Path_, yaml.Mark] = {}

    def build(self, node: yaml.Node, path: Path_ = ()) -> Any:
        self.marks[path] = node.start_mark
        if isinstance(node, yaml.MappingNode):
            result: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(yaml.safe_load(yaml.serialize(key_node)))
                self.marks[(*path, key)] = key_node.start_mark
                result[key] = self.build(value_node, (*path, key))
                self.marks[(*path, key)] = key_node.start_mark
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return yaml.safe_load(yaml.serialize(node))

    def where(self, path: Path_) -> str:
        mark = self.marks.get(path)
        dotted = ".".join(str(p) for p in path) or "<top>"
        if mark is None:
            return f"{dotted} ({self.source})"
        return f"{dotted} ({self.source}:{mark.line + 1}:{mark.column + 1})"


# --- loading -------------------------------------------------------------------------------------


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a config file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from exc
    return parse_config(text, source=str(file), env=env)


def parse_config(text: str, *, source: str = "<config>", env: Mapping[str, str] | None = None) -> Config:
    """Validate config text; ``env`` defaults to ``os.environ``."""
    environ = os.environ if env is None else env
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    located = _Located(source)
    raw = located.build(node) if node is not None else {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the config must be a mapping with a model_list")
    loader = _Loader(located, environ)
    return loader.load(raw)


def config_from_mapping(
    mapping: Mapping[str, Any], *, source: str = "<dict>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate a config given as Python data in the file's format (``{"model_list": [...]}``), with the
    same checks and ``os.environ/NAME`` references as a file."""
    try:
        text = yaml.safe_dump(dict(mapping), sort_keys=False)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: the config holds a value that is not plain data: {exc}") from exc
    return parse_config(text, source=source, env=env)


class _Loader:
    def __init__(self, located: _Located, env: Mapping[str, str]) -> None:
        self.located = located
        self.env = env
        self.unimplemented: list[str] = []

    def fail(self, path: Path_, message: str) -> ConfigError:
        return ConfigError(f"{self.located.where(path)}: {message}")

    def check_keys(self, value: object, path: Path_, allowed: frozenset[str], section: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        litellm_only = _LITELLM_ONLY_KEYS.get(section, frozenset())
        for key in value:
            if key in allowed:
                continue
            if key in litellm_only:
                self.unimplemented.append(self.located.where((*path, key)))
                continue
            raise self.fail(
                (*path, key), f"unknown key {key!r} (expected one of: {', '.join(sorted(allowed))})"
            )
        return value

    def resolve(self, value: Any, path: Path_, entry: str) -> Any:
        """Replace ``os.environ/NAME`` strings, recursively."""
        if isinstance(value, str) and value.startswith(ENV_PREFIX):
            name = value[len(ENV_PREFIX) :]
            if name not in self.env:
                raise self.fail(path, f"environment variable {name} is not set (needed by {entry})")
            return self.env[name]
        if isinstance(value, dict):
            return {k: self.resolve(v, (*path, k), entry) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v, (*path, i), entry) for i, v in enumerate(value)]
        return value

    def load(self, raw: dict[str, Any]) -> Config:
        self.check_keys(raw, (), _TOP_KEYS, "top")
        env_vars = raw.get("environment_variables") or {}
        if env_vars:
            if not isinstance(env_vars, dict):
                raise self.fail(("environment_variables",), "must be a mapping of NAME: value")
            self.env = {**self.env, **{str(k): str(v) for k, v in env_vars.items()}}
        litellm_settings = self.check_keys(
            raw.get("litellm_settings") or {},
            ("litellm_settings",),
            _LITELLM_SETTINGS_KEYS,
            "litellm_settings",
        )
        general = self._general(raw.get("general_settings") or {})
        router = self._router(raw.get("router_settings") or {}, litellm_settings)
        model_list = raw.get("model_list")
        if model_list is None:
            model_list = []
        if not isinstance(model_list, list):
            raise self.fail(("model_list",), "must be a list of deployments")
        deployments = tuple(self._deployment(entry, i) for i, entry in enumerate(model_list))
        if self.unimplemented:
            log.warning(
                "config keys accepted but not implemented by anygate (ignored): %s",
                "; ".join(self.unimplemented),
            )
        return Config(deployments, general, router, self.located.source)

    def _general(self, value: object) -> GeneralSettings:
        path: Path_ = ("general_settings",)
        section = self.resolve(
            self.check_keys(value, path, _GENERAL_KEYS, "general_settings"), path, "general_settings"
        )
        master_key = section.get("master_key")
        if master_key is not None and not isinstance(master_key, str):
            raise self.fail((*path, "master_key"), "must be a string")
        master_key = master_key_from_environment(self.env) or master_key
        urls: dict[str, str | None] = {}
        for key, variable in (("database_url", DATABASE_URL_ENV), ("redis_url", REDIS_URL_ENV)):
            url = section.get(key) or self.env.get(variable) or None
            if url is not None and not isinstance(url, str):
                raise self.fail((*path, key), "must be a URL string")
            urls[key] = url
        for key in ("teams", "disable_spend_logs"):
            if section.get(key) is not None and not isinstance(section[key], bool):
                raise self.fail((*path, key), "must be true or false")
        return GeneralSettings(
            master_key=master_key or None,
            max_request_size_mb=self._number(
                section, path, "max_request_size_mb", DEFAULT_MAX_REQUEST_SIZE_MB
            ),
            stream_ping_interval=self._number(section, path, "stream_ping_interval", DEFAULT_PING_INTERVAL),
            stream_idle_timeout=self._optional_number(section, path, "stream_idle_timeout"),
            limits=Limits(**{key: self._number(section, path, key, d) for key, d in LIMIT_DEFAULTS.items()}),
            database_url=urls["database_url"],
            redis_url=urls["redis_url"],
            teams=section.get("teams"),
            proxy_batch_write_at=self._number(
                section, path, "proxy_batch_write_at", DEFAULT_SPEND_FLUSH_INTERVAL
            ),
            disable_spend_logs=bool(section.get("disable_spend_logs", False)),
            key_sync_interval=self._number(section, path, "key_sync_interval", DEFAULT_KEY_SYNC_INTERVAL),
            redis_key_prefix=str(section.get("redis_key_prefix") or "anygate:"),
            metrics=self._flag(section, path, "metrics"),
            metrics_public=self._flag(section, path, "metrics_public"),
            ui=self._flag(section, path, "ui"),
            log_prompts=self._flag(section, path, "log_prompts"),
            web_search=parse_web_search(
                section.get("web_search"), self._section_fail(path, "web_search"), self.env
            ),
            web_fetch=parse_web_fetch(section.get("web_fetch"), self._section_fail(path, "web_fetch")),
        )

    def _section_fail(self, path: Path_, section: str) -> Callable[[str | None, str], ConfigError]:
        """A sub-section's error builder: the message names the key and its position."""
        return lambda key, message: self.fail(
            (*path, section) if key is None else (*path, section, key), message
        )

    def _router(self, value: object, litellm_settings: dict[str, Any]) -> RouterSettings:
        path: Path_ = ("router_settings",)
        section = self.resolve(
            self.check_keys(value, path, _ROUTER_KEYS, "router_settings"), path, "router_settings"
        )
        strategy = section.get("routing_strategy", "simple-shuffle")
        if strategy not in ROUTING_STRATEGIES:
            raise self.fail(
                (*path, "routing_strategy"),
                f"unknown routing strategy {strategy!r} "
                f"(expected one of: {', '.join(sorted(ROUTING_STRATEGIES))})",
            )
        merged = {**{k: v for k, v in litellm_settings.items() if k != "request_timeout"}, **section}
        if "timeout" not in merged and "request_timeout" in litellm_settings:
            merged["timeout"] = litellm_settings["request_timeout"]
        num_retries = merged.get("num_retries", 2)
        if not isinstance(num_retries, int) or isinstance(num_retries, bool) or num_retries < 0:
            raise self.fail((*path, "num_retries"), "must be a non-negative integer")
        allowed_fails = merged.get("allowed_fails", 3)
        if not isinstance(allowed_fails, int) or isinstance(allowed_fails, bool) or allowed_fails < 0:
            raise self.fail((*path, "allowed_fails"), "must be a non-negative integer")
        alias = merged.get("model_group_alias") or {}
        if not isinstance(alias, dict):
            raise self.fail((*path, "model_group_alias"), "must be a mapping of name to model group")
        return RouterSettings(
            routing_strategy=strategy,
            num_retries=num_retries,
            timeout=self._optional_number(merged, path, "timeout"),
            stream_timeout=self._optional_number(merged, path, "stream_timeout"),
            retry_after=self._number(merged, path, "retry_after", 0.0),
            allowed_fails=allowed_fails,
            cooldown_time=self._number(merged, path, "cooldown_time", 5.0),
            fallbacks=self._fallbacks(merged, path, "fallbacks"),
            context_window_fallbacks=self._fallbacks(merged, path, "context_window_fallbacks"),
            content_policy_fallbacks=self._fallbacks(merged, path, "content_policy_fallbacks"),
            model_group_alias={str(k): _alias_target(v) for k, v in alias.items()},
        )

    def _fallbacks(self, section: dict[str, Any], path: Path_, key: str) -> dict[str, tuple[str, ...]]:
        value = section.get(key) or []
        if not isinstance(value, list):
            raise self.fail((*path, key), "must be a list like [{group: [other, ...]}]")
        result: dict[str, tuple[str, ...]] = {}
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise self.fail((*path, key, i), "must be a mapping {group: [other, ...]}")
            for group, targets in item.items():
                if isinstance(targets, str):
                    targets = [targets]
                if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
                    raise self.fail((*path, key, i, group), "must be a list of model group names")
                result[str(group)] = tuple(targets)
        return result

    def _flag(self, section: Mapping[str, Any], path: Path_, key: str) -> bool:
        value = section.get(key, _OBSERVABILITY_SWITCHES[key])
        if not isinstance(value, bool):
            raise self.fail((*path, key), "must be true or false")
        return value

    def _number(self, section: Mapping[str, Any], path: Path_, key: str, default: float) -> float:
        value = self._optional_number(section, path, key)
        return default if value is None else value

    def _optional_number(self, section: Mapping[str, Any], path: Path_, key: str) -> float | None:
        value = section.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise self.fail((*path, key), f"must be a number, not {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise self.fail((*path, key), "must be a non-negative number")
        return float(value)

    def _deployment(self, entry: object, i: int) -> Deployment:
        path: Path_ = ("model_list", i)
        self.check_keys(entry, path, _DEPLOYMENT_KEYS, "deployment")
        assert isinstance(entry, dict)
        model_name = entry.get("model_name")
        if not isinstance(model_name, str) or not model_name:
            raise self.fail((*path, "model_name"), "required: the name clients ask for")
        label = f"model_list entry {model_name!r}"
        params_path: Path_ = (*path, "litellm_params")
        raw_params = entry.get("litellm_params")
        if not isinstance(raw_params, dict):
            raise self.fail(params_path, "must be a mapping")
        model = raw_params.get("model")
        if not isinstance(model, str) or not model:
            raise self.fail((*params_path, "model"), f"required in {label}: '<provider>/<upstream model>'")
        custom = raw_params.get("custom_llm_provider")
        split = (
            api_variant(custom, model.removeprefix(f"{custom}/"))
            if isinstance(custom, str)
            else split_model(model)
        )
        if split is None:
            raise self.fail(
                (*params_path, "model"),
                f"cannot tell the provider of {model!r} in {label}: write it as '<provider>/<model>' "
                f"(providers: {', '.join(sorted(SPECS))})",
            )
        provider, upstream_model = split
        spec = SPECS.get(provider)
        if spec is None and provider not in PLANNED_PROVIDERS:
            raise self.fail((*params_path, "model"), f"unknown provider {provider!r} in {label}")
        if spec is None:
            log.warning("%s: provider %r is not supported yet; requests to it will fail", label, provider)
        owned = spec.param_keys if spec is not None else frozenset()
        params = self.check_keys(raw_params, params_path, _PARAM_KEYS | owned, "litellm_params")
        params = self.resolve(params, params_path, label)
        provider_params = {key: params[key] for key in owned if key in params}
        if spec is not None and spec.check_params is not None:
            try:
                spec.check_params(provider_params)
            except ParamError as exc:
                raise self.fail((*params_path, exc.key), str(exc)) from None
        model_info = entry.get("model_info") or {}
        if not isinstance(model_info, dict):
            raise self.fail((*path, "model_info"), "must be a mapping")
        if provider_params.get(USE_RESPONSES_API) is True or model_info.get("mode") == "responses":
            provider, upstream_model = api_variant(provider, upstream_model, responses=True)
        extra_headers = params.get("extra_headers") or {}
        if not isinstance(extra_headers, dict):
            raise self.fail((*params_path, "extra_headers"), "must be a mapping of header name to value")
        api_key = params.get("api_key")
        if api_key is None:
            api_key = next(
                (self.env[name] for name in default_api_key_env(provider) if name in self.env), None
            )
        for key in ("api_base", "api_version", "organization"):
            if params.get(key) is not None and not isinstance(params[key], str):
                raise self.fail((*params_path, key), "must be a string")
        for key in ("rpm", "tpm", "max_retries"):
            value = params.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
                raise self.fail((*params_path, key), "must be a non-negative integer")
        costs: dict[str, float] = {}
        for source, source_path in ((params, params_path), (model_info, (*path, "model_info"))):
            for key in _COST_KEYS & source.keys():
                value = source[key]
                if isinstance(value, str):
                    try:
                        value = float(value)
                    except ValueError:
                        raise self.fail((*source_path, key), "must be a number (USD per token)") from None
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or not 0 <= value < math.inf  # NaN fails too: a NaN cost fails every spend write
                ):
                    raise self.fail((*source_path, key), "must be a non-negative number (USD per token)")
                costs[key] = float(value)
        deployment_id = str(model_info.get("id") or f"{model_name}#{i}")
        return Deployment(
            model_name=model_name,
            provider=provider,
            upstream_model=upstream_model,
            deployment_id=deployment_id,
            api_base=params.get("api_base"),
            api_key=None if api_key is None else str(api_key),
            api_version=params.get("api_version"),
            organization=params.get("organization"),
            timeout=self._optional_number(params, params_path, "timeout"),
            stream_timeout=self._optional_number(params, params_path, "stream_timeout"),
            max_retries=params.get("max_retries"),
            extra_headers={str(k): str(v) for k, v in extra_headers.items()},
            rpm=params.get("rpm"),
            tpm=params.get("tpm"),
            weight=self._optional_number(params, params_path, "weight"),
            model_info=model_info,
            params=provider_params,
            costs=costs,
        )


def _alias_target(value: object) -> str:
    """LiteLLM allows ``alias: group`` or ``alias: {model: group, hidden: bool}``."""
    if isinstance(value, dict):
        return str(value.get("model", ""))
    return str(value)


def deployment_for_model(
    model: str,
    *,
    api_key: str | None = None,
    api_base: str | None = None,
    timeout: float | None = None,
    extra_headers: Mapping[str, str] | None = None,
    api_version: str | None = None,
    organization: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Deployment:
    """A one-off deployment for an SDK call such as ``model="openai/gpt-4o-mini"`` with no config."""
    split = split_model(model)
    if split is None or split[0] not in SPECS:
        raise GatewayError(
            404,
            f"cannot route model {model!r}: write it as '<provider>/<model>' "
            f"(providers: {', '.join(sorted(SPECS))})",
        )
    provider, upstream_model = split
    environ = os.environ if env is None else env
    if api_key is None:
        api_key = next((environ[name] for name in default_api_key_env(provider) if name in environ), None)
    return Deployment(
        model_name=model,
        provider=provider,
        upstream_model=upstream_model,
        deployment_id=model,
        api_base=api_base,
        api_key=api_key,
        api_version=api_version,
        organization=organization,
        timeout=timeout,
        extra_headers=dict(extra_headers or {}),
    )
