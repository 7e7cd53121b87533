"""gigaam-api: an OpenAI-compatible Russian speech-recognition server on GigaAM models."""

__version__ = "0.1.0"
