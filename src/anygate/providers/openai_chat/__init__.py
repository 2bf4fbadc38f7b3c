"""OpenAI Chat Completions and the OpenAI-compatible services, as presets of one translator.

- ``presets.py``: the services (base URL, key variable, quirks) as one table;
- ``request.py``: Anthropic request → Chat Completions body (``reasoning.py``: thinking → effort;
  ``names.py``: tool names and ids both sides accept);
- ``stream.py``: Chat Completions chunks → Anthropic events, via the shared block state machine;
- ``response.py``: a whole completion → the Message, through the same assembler;
- ``errors.py``: upstream failures → Anthropic errors;
- ``call.py``: one attempt (the request sent, the tool-name map, what reading the answer needs);
- ``provider.py``: the provider object the gateway calls.

Importing this package imports nothing else: the registry reads the presets as data and loads the
provider on first use (:func:`anygate.providers.registry.load_provider`).
"""
