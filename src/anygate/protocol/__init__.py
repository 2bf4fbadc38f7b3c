"""The Anthropic Messages wire format: the gateway's one internal model."""
