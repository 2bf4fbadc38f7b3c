"""The admin API's request bodies: LiteLLM's field names and types, validated by pydantic.

Fields LiteLLM has that anygate does not act on are accepted and ignored (``IGNORED``), so scripts
written for LiteLLM keep working; any other field is a 400 naming it, because a misspelt limit silently
ignored is a budget overrun later.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from anygate.teams.records import duration_seconds

IGNORED: Final = frozenset(
    {
        "aliases", "config", "permissions", "model_max_budget", "model_rpm_limit", "model_tpm_limit",
        "allowed_cache_controls", "guardrails", "policies", "prompts", "tags", "soft_budget",
        "send_invite_email", "key_type", "auto_rotate", "rotation_interval", "organization_id",
        "project_id", "agent_id", "budget_id", "enforced_params", "allowed_routes", "object_permission",
        "tpd_limit", "rpm_limit_type", "tpm_limit_type", "router_settings", "access_group_ids",
        "budget_limits", "budget_fallbacks", "mcp_rpm_limit", "tag_rpm_limit", "temp_budget_increase",
        "temp_budget_expiry", "grace_period", "new_master_key", "sso_user_id", "organizations",
        "team_member_permissions", "admins", "members", "model_aliases", "default_team_member_models",
        "allowed_passthrough_routes", "disable_global_guardrails", "enable_prompt_caching",
        "end_user_budget_id", "default_estimated_output_tokens", "team_member_budget",
        "team_member_key_duration", "team_member_rpm_limit", "team_member_tpm_limit", "prompt",
        "username", "email",  # in the /user/new example of LiteLLM's docstring; LiteLLM ignores them too
    }
)  # fmt: skip
"""LiteLLM request fields accepted without effect."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="allow", str_strip_whitespace=True)

    @model_validator(mode="after")
    def _known_fields(self) -> _Body:
        unknown = sorted(set(self.model_extra or {}) - IGNORED)
        if unknown:
            raise ValueError(f"unknown field(s): {', '.join(unknown)}")
        return self


def _check_duration(value: str | None) -> str | None:
    if value is not None:
        duration_seconds(value)
    return value


class _Limits(_Body):
    models: list[str] | None = None
    max_budget: float | None = Field(default=None, ge=0)
    budget_duration: str | None = None
    tpm_limit: int | None = Field(default=None, ge=0)
    rpm_limit: int | None = Field(default=None, ge=0)
    max_parallel_requests: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None
    blocked: bool | None = None
    spend: float | None = Field(default=None, ge=0)

    _duration = field_validator("budget_duration")(_check_duration)

    @field_validator("max_budget", mode="before")
    @classmethod
    def _empty_budget(cls, value: object) -> object:
        return None if value == "" else value


class KeyGenerate(_Limits):
    key: str | None = None
    key_alias: str | None = None
    duration: str | None = None
    user_id: str | None = None
    team_id: str | None = None

    _key_duration = field_validator("duration")(_check_duration)

    @field_validator("team_id", "user_id", "key_alias", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("key")
    @classmethod
    def _custom_key(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("sk-") or len(value) < 12):
            raise ValueError("a custom key must start with 'sk-' and be at least 12 characters long")
        return value


class KeyUpdate(KeyGenerate):
    @model_validator(mode="after")
    def _identified(self) -> KeyUpdate:
        if self.key is None and self.key_alias is None:
            raise ValueError("either key or key_alias must be provided")
        return self

    @field_validator("key")
    @classmethod
    def _custom_key(cls, value: str | None) -> str | None:
        return value


class KeyRegenerate(KeyGenerate):
    new_key: str | None = None

    @field_validator("key")
    @classmethod
    def _custom_key(cls, value: str | None) -> str | None:
        return value

    @field_validator("new_key")
    @classmethod
    def _new_key(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("sk-") or len(value) < 12):
            raise ValueError("new_key must start with 'sk-' and be at least 12 characters long")
        return value


class KeyDelete(_Body):
    keys: list[str] | None = None
    key_aliases: list[str] | None = None

    @model_validator(mode="after")
    def _some(self) -> KeyDelete:
        if not self.keys and not self.key_aliases:
            raise ValueError("at least one of 'keys' or 'key_aliases' must be provided")
        return self


class KeyBlock(_Body):
    key: str


class Member(_Body):
    user_id: str | None = None
    user_email: str | None = None
    role: Literal["admin", "user"] = "user"

    @model_validator(mode="after")
    def _someone(self) -> Member:
        if self.user_id is None and self.user_email is None:
            raise ValueError("either user_id or user_email must be provided")
        return self


class TeamNew(_Limits):
    team_id: str | None = None
    team_alias: str | None = None
    members_with_roles: list[Member] | None = None


class TeamUpdate(TeamNew):
    team_id: str


class TeamDelete(_Body):
    team_ids: list[str] = Field(min_length=1)


class TeamMemberAdd(_Body):
    team_id: str
    member: Member | list[Member]
    max_budget_in_team: float | None = Field(default=None, ge=0)


class UserNew(_Limits):
    user_id: str | None = None
    user_email: str | None = None
    user_alias: str | None = None
    user_role: (
        Literal["proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer"] | None
    ) = None
    teams: list[str] | None = None
    auto_create_key: bool = True
    key_alias: str | None = None
    duration: str | None = None
    team_id: str | None = None

    _key_duration = field_validator("duration")(_check_duration)


class UserUpdate(UserNew):
    @model_validator(mode="after")
    def _identified(self) -> UserUpdate:
        if self.user_id is None and self.user_email is None:
            raise ValueError("either user_id or user_email must be provided")
        return self


class UserDelete(_Body):
    user_ids: list[str] = Field(min_length=1)
