"""Upstream APIs: one module per API, pure translation, no I/O."""
