"""Concurrent short requests share model calls on the real server, and each gets its own text.

The server runs on loopback with the fixture v3_ctc checkpoint (fp32), as in
``tests/test_api_concurrency.py``. To make "several requests wait at once" exact rather than
timing-dependent, the model's ``transcribe`` is wrapped in the gate of ``tests/gated_server.py``:
the test closes it, sends a first request (the worker enters its call and waits at the gate),
sends the others, waits until the scheduler holds all their batches, and opens the gate. The
model itself is the real one; what was combined is read from the scheduler's served records
(``record_served``, installed as soon as the model is loaded).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from gigaam_api.batching import MAX_PADDING_SHARE
from tests.api_server import MULTIPART_HEADERS, multipart_body, raw_request, scheduler
from tests.gated_server import (
    CLIPS,
    Burst,
    Gate,
    gated_app,
    loaded_scheduler,
    post,
    records,
    served,
)
from tests.helpers import records_of, wait_until


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate()


@pytest.fixture(scope="module")
def app(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, gate: Gate) -> FastAPI:
    # One lane: what is combined is then exactly "everything that waited behind the blocker"
    # (the overlap lane is tested in tests/test_api_overlap.py).
    made = gated_app(golden_dir, tmp_path_factory, gate, overlap_short_calls=False)
    assert made.state.ctx.service.settings.batch_combine
    return made


@pytest.fixture(scope="module")
def url(app: FastAPI) -> Iterator[str]:
    yield from served(app)


@pytest.fixture(scope="module")
def alone(url: str) -> list[str]:
    """Each clip's text when it is the only request (the gate is open: nothing waits)."""
    texts = []
    for i, clip in enumerate(CLIPS):
        response = post(url, clip, f"alone-{i}")
        assert response.status_code == 200
        texts.append(response.json()["text"])
    return texts


def batch_seconds_count(url: str) -> float:
    for line in httpx.get(f"{url}/metrics").text.splitlines():
        if line.startswith("gigaam_inference_batch_seconds_count"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no inference histogram in /metrics")


def test_concurrent_short_requests_are_combined_and_each_text_is_its_own(
    app: FastAPI, url: str, gate: Gate, alone: list[str]
) -> None:
    observed_before = batch_seconds_count(url)
    burst = Burst(app, url, gate)
    for i, clip in enumerate(CLIPS):
        burst.start(f"burst-{i}", clip)
    wait_until(lambda: scheduler(app).pending_batches == len(CLIPS), what="all clips queued")
    burst.release()
    for i in range(len(CLIPS)):
        response = burst.responses[f"burst-{i}"]
        assert response.status_code == 200
        assert response.json()["text"] == alone[i]
    served = records(app, "burst-")
    assert sorted(r.request_id for r in served) == [f"burst-{i}" for i in range(len(CLIPS))]
    calls = {r.call for r in served}
    assert len(calls) < len(CLIPS)  # combined: fewer model calls than requests
    assert max(r.owners for r in served) >= 2
    blocker_call = next(r.call for r in records(app, "blocker"))
    # all of them in the turn right after the blocker's call: consecutive call numbers
    assert sorted(calls) == list(range(blocker_call + 1, blocker_call + 1 + len(calls)))
    for call in calls:  # each call was planned within the padding limit
        mine = [r for r in served if r.call == call]
        computed = sum(r.computed_samples for r in mine)
        padded = computed - sum(r.audio_samples for r in mine)
        assert padded <= MAX_PADDING_SHARE * computed
    # the model-time histogram counts calls, not the batches that shared them
    assert batch_seconds_count(url) == observed_before + 1 + len(calls)


def test_a_client_leaving_does_not_disturb_the_others_in_its_turn(
    app: FastAPI, url: str, gate: Gate, alone: list[str]
) -> None:
    burst = Burst(app, url, gate)
    port = int(url.rsplit(":", 1)[1])
    leaver = raw_request(port, multipart_body(CLIPS[1]), "leave-1", MULTIPART_HEADERS)
    for i in (0, 2, 3):
        burst.start(f"stay-{i}", CLIPS[i])
    wait_until(lambda: scheduler(app).pending_batches == 4, what="all clips queued")
    leaver.close()  # the client goes away while its batch waits for the combined call
    wait_until(lambda: scheduler(app).pending_batches == 3, what="the leaver's batch dropped")
    burst.release()
    for i in (0, 2, 3):
        response = burst.responses[f"stay-{i}"]
        assert response.status_code == 200 and response.json()["text"] == alone[i]
    assert records(app, "leave-") == []  # its audio never reached the model
    assert len({r.call for r in records(app, "stay-")}) < 3
    wait_until(lambda: scheduler(app).active == 0, what="all tickets released")


def test_combining_can_be_switched_off(golden_dir: Path, tmp_path: Path) -> None:
    with loaded_scheduler(golden_dir, tmp_path, batch_combine=False) as off:
        assert off.combine_samples == 0
        waves = [np.zeros(16000, np.float32), np.zeros(4000, np.float32)]
        with off.admit("off") as ticket:
            ticket.infer(waves)
        assert [(r.size, r.owners) for r in records_of(off)] == [(2, 1)]  # one call
