"""Teams: virtual keys, teams and users with budgets and limits, and a spend ledger (LiteLLM-compatible).

The room is a hook (:class:`~anygate.teams.hook.TeamsHook`) plus admin routes
(:mod:`anygate.teams.admin`); the request path only sees the hook. Pieces:

- :mod:`.schema` and :mod:`.store`: tables on SQLAlchemy Core (SQLite through aiosqlite by default,
  Postgres through asyncpg), versioned migrations run at start-up;
- :mod:`.cache`: every key, team and user in memory, refreshed from a change counter in the database;
- :mod:`.limits`: rpm / tpm / parallel-request limits and budgets, in-process or in Redis (one script,
  one round trip per request);
- :mod:`.ledger`: the spend of each request, priced by :mod:`.pricing` and written in batches.
"""
