"""LiteLLM's admin API for keys, teams, users and spend (:mod:`.api`), on the teams store."""
