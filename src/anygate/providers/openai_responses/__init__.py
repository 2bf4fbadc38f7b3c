"""The OpenAI Responses API (``/v1/responses``), for reasoning models whose reasoning must survive the turn.

- ``request.py``: Anthropic request → Responses body; earlier reasoning replayed from thinking blocks;
- ``stream.py``: Responses events → Anthropic events, via the shared block state machine;
- ``response.py``: a whole response object → the Message, through the same assembler;
- ``errors.py``: stream failures and the refusal of replayed reasoning;
- ``call.py``: one attempt, and its amended retry without the reasoning the upstream refused;
- ``provider.py``: the provider object the gateway calls.

Services, keys and URLs come from the Chat Completions presets; content parts, tools and tool results
are made by that translator's functions. Importing this package imports nothing else.
"""
