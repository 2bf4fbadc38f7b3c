"""The fake upstream: nginx + its Lua module serving fixed OpenAI and Anthropic answers on loopback.

nginx (from Debian's packages) is used rather than a Python server so the upstream costs a few
tens of microseconds of CPU per request and cannot be what limits either gateway.
"""
