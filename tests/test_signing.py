"""Sealed provider state in thinking signatures: round trip, provider isolation, tamper resistance."""

from __future__ import annotations

from anygate.signing import ThinkingSigner, envelope_provider, is_gateway_signature

SIGNER = ThinkingSigner("master-key")


def test_sealed_state_comes_back_only_to_its_provider() -> None:
    payload = {"id": "rs_1", "encrypted_content": "gAAAA...", "n": [1, 2]}
    sealed = SIGNER.seal("openai_responses", payload)
    assert is_gateway_signature(sealed) and envelope_provider(sealed) == "openai_responses"
    assert SIGNER.unseal("openai_responses", sealed) == payload
    assert SIGNER.unseal("gemini", sealed) is None


def test_forged_damaged_or_foreign_signatures_are_ignored() -> None:
    sealed = SIGNER.seal("gemini", {"thought_signature": "abc"})
    prefix, _, mac = sealed.rpartition(".")
    assert SIGNER.unseal("gemini", prefix + "." + mac[::-1]) is None
    assert SIGNER.unseal("gemini", sealed.replace("gemini", "gemini", 1) + "x") is None
    assert ThinkingSigner("another-gateway").unseal("gemini", sealed) is None
    assert SIGNER.unseal("gemini", "EqQBCkgIARABGAIiQ...") is None  # a genuine Anthropic signature
    assert SIGNER.unseal("gemini", None) is None
    assert envelope_provider("EqQBCkgIARAB") is None and not is_gateway_signature("EqQBCkgIARAB")


def test_thinking_marks_still_verify() -> None:
    mark = SIGNER.sign("Let me think.")
    assert is_gateway_signature(mark) and SIGNER.verify("Let me think.", mark)
    assert not SIGNER.verify("Something else.", mark) and envelope_provider(mark) is None
