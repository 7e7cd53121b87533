"""Drive one installed openai-python version against a running gigaam-api server.

Prints one JSON summary on stdout; ``tests/test_sdk_compat.py`` asserts on it. The script runs
inside a throwaway virtualenv holding only that SDK (1.x or 2.x: the project's own venv pins
3.x), so it uses nothing but the standard library and ``openai``.

Why a separate process per SDK: the majors cannot share an interpreter, and they differ in
what they hand back — the parsed type per ``response_format``, the stream event classes, the
exception classes and their fields — so only the real SDK can show what an application on that
version would see.

Usage: python py_client.py <base-url> <api-key> <audio-file> <keyword>
"""

from __future__ import annotations

import inspect
import json
import sys
from pathlib import Path
from typing import Any

import openai
from openai import OpenAI


def seen(value: Any) -> dict[str, Any]:
    """The class the SDK returned and its content (model objects as their dict)."""
    content = value.model_dump() if hasattr(value, "model_dump") else value
    return {"class": type(value).__name__, "value": content}


def error_of(client: OpenAI, **params: Any) -> dict[str, Any]:
    """Call ``create`` expecting an error; report which SDK exception it raised and its fields."""
    try:
        client.audio.transcriptions.create(**params)
    except openai.APIStatusError as exc:
        return {
            "raised": True,
            "class": type(exc).__name__,
            "status": exc.status_code,
            "param": exc.param,
            "code": exc.code,
            "request_id": exc.request_id,
        }
    return {"raised": False}


def main(base_url: str, api_key: str, audio: Path, keyword: str) -> dict[str, Any]:
    summary: dict[str, Any] = {"version": openai.__version__}
    with OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=120.0) as client:
        create = client.audio.transcriptions.create
        with audio.open("rb") as fh:
            raw = client.audio.transcriptions.with_raw_response.create(file=fh, model="whisper-1")
        summary["json"] = seen(raw.parse())
        summary["json_request_id"] = raw.request_id if hasattr(raw, "request_id") else None
        summary["json_bytes"] = seen(create(file=("upload", audio.read_bytes()), model="whisper-1"))
        for fmt in ("text", "srt", "vtt"):
            summary[fmt] = seen(create(file=audio, model="whisper-1", response_format=fmt))
        verbose = create(
            file=audio,
            model="whisper-1",
            response_format="verbose_json",
            timestamp_granularities=["word", "segment"],
        )
        summary["verbose_json"] = seen(verbose)
        summary["verbose_attrs"] = {"duration": verbose.duration, "language": verbose.language}

        events = []
        for event in create(file=audio, model="gpt-4o-transcribe", stream=True):
            events.append({"class": type(event).__name__, **event.model_dump()})
        summary["stream"] = events

        summary["bad_format"] = error_of(
            client, file=audio, model="whisper-1", response_format="xml"
        )

        # keywords: a parameter from openai-python 2.50 on; before, the documented way is
        # extra_body (encoded like the SDK's own lists: one keywords[] part per phrase)
        native = "keywords" in inspect.signature(create).parameters
        summary["keywords_native"] = native

        def keywords(*phrases: str) -> dict[str, Any]:
            listed = list(phrases)
            return {"keywords": listed} if native else {"extra_body": {"keywords": listed}}

        summary["keywords"] = seen(create(file=audio, model="whisper-1", **keywords(keyword)))
        summary["bad_keyword"] = error_of(
            client, file=audio, model="whisper-1", **keywords("Сбербанк", "Moscow")
        )
        if int(openai.__version__.split(".")[0]) >= 2:  # diarized_json arrived in 2.x
            diarize = "gpt-4o-transcribe-diarize"
            summary["diarized"] = seen(
                create(file=audio, model=diarize, response_format="diarized_json")
            )
            summary["diarized_stream"] = [
                {"class": type(event).__name__, **event.model_dump()}
                for event in create(
                    file=audio, model=diarize, response_format="diarized_json", stream=True
                )
            ]
    with OpenAI(base_url=base_url, api_key=api_key + "-wrong", max_retries=0) as wrong:
        summary["bad_key"] = error_of(wrong, file=audio, model="whisper-1")
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 5:
        sys.exit("usage: python py_client.py <base-url> <api-key> <audio-file> <keyword>")
    json.dump(main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]), sys.stdout)
