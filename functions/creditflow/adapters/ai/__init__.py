"""Model providers: OpenAI-compatible HTTP endpoints through the official SDK, and the offline demo."""
