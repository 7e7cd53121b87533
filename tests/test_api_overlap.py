"""A short request runs beside the model call in flight on the real server, with its own text.

The fixture v3_ctc checkpoint in int8 (``QUANTIZE_INT8=true``: requests are never combined, so
the second lane is what lets a burst of short clips keep both cores busy). The model is
wrapped in the gate of ``tests/gated_server.py``: a first request is held inside its model
call, and a second short one must enter the model too before the gate opens — that is the
overlap, observed without timing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from tests.api_server import scheduler
from tests.gated_server import (
    CLIPS,
    TIMEOUT,
    Burst,
    Gate,
    gated_app,
    loaded_scheduler,
    post,
    records,
    served,
)


@pytest.fixture(scope="module")
def gate() -> Gate:
    return Gate()


@pytest.fixture(scope="module")
def app(golden_dir: Path, tmp_path_factory: pytest.TempPathFactory, gate: Gate) -> FastAPI:
    made = gated_app(golden_dir, tmp_path_factory, gate, quantize_int8=True)
    assert made.state.ctx.service.settings.overlap_short_calls  # the default
    return made


@pytest.fixture(scope="module")
def url(app: FastAPI) -> Iterator[str]:
    yield from served(app)


def test_a_short_request_runs_beside_the_call_in_flight_with_its_own_text(
    app: FastAPI, url: str, gate: Gate
) -> None:
    alone = [post(url, clip, f"alone-{i}").json()["text"] for i, clip in enumerate(CLIPS[:3])]
    assert scheduler(app).lanes == 2
    burst = Burst(app, url, gate)  # "blocker" (CLIPS[0]) is held inside the model
    burst.start("beside-1", CLIPS[1])
    assert gate.entered.acquire(timeout=TIMEOUT), "the short request never reached the model"
    burst.start("after-2", CLIPS[2])  # both lanes busy: this one waits for a free lane
    burst.release()
    assert burst.responses["blocker"].json()["text"] == alone[0]
    assert burst.responses["beside-1"].json()["text"] == alone[1]
    assert burst.responses["after-2"].json()["text"] == alone[2]
    # int8: every call holds one request's waves, whichever lane ran it
    for record in records(app, ""):
        assert record.owners == 1


def test_the_second_lane_can_be_switched_off(golden_dir: Path, tmp_path: Path) -> None:
    with loaded_scheduler(golden_dir, tmp_path, overlap_short_calls=False) as off:
        assert off.lanes == 1 and off.overlap_samples == 0
