"""AWS Bedrock: Claude through InvokeModel with the native Anthropic body, every other model through the
Converse API; SigV4 or Bedrock API keys; AWS binary event streams."""
