"""The Home Assistant door: a Wyoming protocol server in the same process as the HTTP API.

Home Assistant's local speech-to-text talks the Wyoming protocol (JSON-lines events with
binary PCM payloads over TCP). This package serves it next to the OpenAI-compatible API, on
the same loaded model and the same fair inference worker:

* :mod:`.protocol` reads events with hard limits (the ``wyoming`` library's reader has none)
  and writes them with the library;
* :mod:`.info` answers ``describe``;
* :mod:`.audio` records an utterance as it streams in;
* :mod:`.transcriber` is the only seam to the service core: it runs a recorded utterance
  through exactly the path ``POST /v1/audio/transcriptions`` uses;
* :mod:`.handler` is the per-connection state machine;
* :mod:`.server` is the listener, started and stopped by the server's lifespan (``server.py``).
"""
