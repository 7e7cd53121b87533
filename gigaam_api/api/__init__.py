"""The OpenAI-compatible HTTP layer: app factory, routes, uploads, errors, formats, SSE."""
