"""Prometheus metrics for ``GET /metrics`` (listed in ``docs/api.md``).

One registry per server that every door writes to — the model's worker, the HTTP layer, the
Wyoming door (the job metrics register into it too) — so one scrape shows them all and each
series name has one home. Each server gets its own registry, so several in one process
(tests) never collide and the output holds only the service's series. Route labels are
route *templates* (``/v1/models/{model_id:path}``), never raw paths, so a scanner hitting
random URLs cannot blow up the number of series.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from gigaam_api.scheduler import ServedBatch

_LATENCY_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
_BATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5)


class Metrics:
    """The service's metric families and the hooks that feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "gigaam_http_requests",
            "HTTP requests by route template, method and status code",
            ["route", "method", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "gigaam_http_request_duration_seconds",
            "Time from request start to the end of the response, by route template",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.audio_seconds = Counter(
            "gigaam_audio_seconds", "Seconds of audio transcribed", registry=r
        )
        self.transcriptions = Counter(
            "gigaam_transcriptions",
            "Finished transcriptions by outcome (ok, client_error, cancelled, error)",
            ["outcome"],
            registry=r,
        )
        self.inference_seconds = Histogram(
            "gigaam_inference_batch_seconds",
            "Model time per inference batch on the worker",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.inference_chunks = Counter(
            "gigaam_inference_chunks", "Audio chunks run through the model", registry=r
        )
        self.rtf = Histogram(
            "gigaam_realtime_factor",
            "Processing time divided by audio duration, per successful transcription",
            buckets=_RTF_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "gigaam_queue_depth",
            "Transcription requests admitted (queued + running); MAX_QUEUE bounds it",
            registry=r,
        )
        self.pending_batches = Gauge(
            "gigaam_pending_batches", "Inference batches waiting for the worker", registry=r
        )
        self.queue_limit = Gauge("gigaam_queue_limit", "MAX_QUEUE", registry=r)
        self.model_loaded = Gauge(
            "gigaam_model_loaded", "1 once the model is loaded and serving", registry=r
        )
        self.wyoming_utterances = Counter(
            "gigaam_wyoming_utterances",
            "Wyoming (Home Assistant) utterances by outcome (ok, client_error, cancelled, error)",
            ["outcome"],
            registry=r,
        )
        self.wyoming_audio_seconds = Counter(
            "gigaam_wyoming_audio_seconds",
            "Seconds of audio transcribed for Wyoming clients",
            registry=r,
        )
        self.wyoming_connections = Gauge(
            "gigaam_wyoming_connections", "Open Wyoming client connections", registry=r
        )

        self.live_sessions = Gauge(
            "gigaam_live_sessions", "Open live transcription sessions (/v1/realtime)", registry=r
        )
        self.live_recognitions = Counter(
            "gigaam_live_recognitions",
            "Live recognitions by kind (final, interim) and outcome (ok, skipped: interim work "
            "yielding to a waiting request, client_error, cancelled, error)",
            ["kind", "outcome"],
            registry=r,
        )
        self.live_final_seconds = Histogram(
            "gigaam_live_final_seconds",
            "Seconds from a live turn's end to its final text",
            buckets=(0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10),
            registry=r,
        )

    def bind_queue(self, depth: Callable[[], int], pending: Callable[[], int], limit: int) -> None:
        """Read queue gauges live from the scheduler at scrape time."""
        self.queue_depth.set_function(lambda: float(depth()))
        self.pending_batches.set_function(lambda: float(pending()))
        self.queue_limit.set(limit)

    def observe_batch(self, batch: ServedBatch) -> None:
        """Scheduler ``on_batch`` hook (runs on the worker thread; prometheus is thread-safe)."""
        if batch.part == 0:  # batches combined into one call share its time: count it once
            self.inference_seconds.observe(batch.seconds)
        self.inference_chunks.inc(batch.size)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.request_seconds.labels(route=route).observe(seconds)

    def observe_transcription(self, audio_seconds: float, processing_seconds: float) -> None:
        self.audio_seconds.inc(audio_seconds)
        self.transcriptions.labels(outcome="ok").inc()
        if audio_seconds > 0:
            self.rtf.observe(processing_seconds / audio_seconds)

    def observe_wyoming_utterance(self, audio_seconds: float) -> None:
        self.wyoming_audio_seconds.inc(audio_seconds)
        self.wyoming_utterances.labels(outcome="ok").inc()

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
