"""Gemini behind the Anthropic interface: the Gemini API (``gemini/``) and Vertex AI (``vertex_ai/``).

- ``request.py``: Anthropic request → ``generateContent`` body (``schema.py``: tool schemas Gemini takes;
  ``thinking.py``: thinking → ``thinkingConfig``);
- ``signatures.py``: how thought signatures travel through a stateless Anthropic client (below);
- ``stream.py``: Gemini answers → Anthropic events, via the shared block state machine; ``response.py``:
  a whole answer through the same assembler;
- ``errors.py``: Google's error bodies → Anthropic errors;
- ``auth.py``: Vertex OAuth tokens (google-auth, imported only when a Vertex deployment asks for one);
- ``vertex_claude.py``: Anthropic models on Vertex (``rawPredict``), relayed as Anthropic streams;
- ``provider.py``: the ``gemini`` and ``vertex_ai`` providers the gateway calls.

Thought signatures
------------------

Gemini attaches an opaque ``thoughtSignature`` to response parts: to a thought part, to the first of
several parallel ``functionCall`` parts, to a text part, or to an empty text part that closes a stream.
It must come back on the same part in the next request (Gemini 3 answers 400 when the signature of a
function call of the current turn is missing). Anthropic clients keep no per-part metadata, but they
return every content block verbatim, thinking blocks with their ``signature`` included. So every
signature travels in a thinking block, inside the gateway's one sealed envelope
(``ctx.signer.seal("gemini", {...})``), with one signature per block and a word saying where it goes:

==============  =====================================================================================
``on``          the signature belongs to…
==============  =====================================================================================
``thought``     the thought text of this very block (sent back as one ``thought: true`` part)
``call``        the ``functionCall`` part of the ``tool_use`` block that follows this block
``text``        the text part of the ``text`` block that follows this block
``empty``       an empty text part standing where this block stands
==============  =====================================================================================

A carrier block for ``call``, ``text`` or ``empty`` has empty thinking text unless Gemini's unsigned
thought text preceded the part (then the text rides along and goes back as an unsigned thought part).
Carrier blocks are made whether or not the client asked for thinking: the signature is Gemini's state,
not the client's choice. The envelope also names the backend (``gemini`` or ``vertex``): a signature made
by one is never sent to the other, and the signer's MAC keeps other providers' state (and forgeries)
out. When a signature is missing where Gemini 3 validates one (the first function call of each step of
the current turn), the documented dummy signature is sent instead (:data:`signatures.DUMMY_SIGNATURE`).
"""
