"""anygate vs LiteLLM benchmark harness (run by hand, not in CI); see bench/README.md."""
