"""The answer to ``describe``: what Home Assistant shows and filters languages by.

Home Assistant lists an ASR program's models and offers the languages of the installed ones
in the voice-assistant settings, so the loaded model is reported as installed with its
languages (``["ru"]`` for the Russian models, ``ru en kk ky uz`` for the multilingual ones)
even while it is still loading (an utterance sent then gets an ``error`` event saying so): a
Home Assistant that connected during start-up would otherwise keep a speech-to-text entity
without languages until it is reloaded.
"""

from __future__ import annotations

from collections.abc import Sequence

from wyoming.info import AsrModel, AsrProgram, Attribution, Info

from gigaam_api import __version__

PROGRAM_NAME = "gigaam-api"
#: What is reported while a local checkpoint (whose vocabulary decides) is still loading:
#: every GigaAM model transcribes Russian.
DEFAULT_LANGUAGES = ("ru",)
GIGAAM_ATTRIBUTION = "GigaAM by Sber (SaluteDevices), MIT licence"
#: The weights' licence (the GigaAM repository is MIT-licensed, code and models).
GIGAAM_LICENCE_URL = "https://github.com/salute-developers/GigaAM/blob/main/LICENSE"


def build_info(model_name: str, languages: Sequence[str] = DEFAULT_LANGUAGES) -> Info:
    """The ``info`` event's content for a server running ``model_name`` (ISO 639-1
    ``languages``)."""
    attribution = Attribution(name=GIGAAM_ATTRIBUTION, url=GIGAAM_LICENCE_URL)
    what = "Russian" if tuple(languages) == ("ru",) else ", ".join(languages)
    model = AsrModel(
        name=model_name,
        description=f"GigaAM {model_name} ({what} speech recognition)",
        attribution=attribution,
        installed=True,
        version=None,
        languages=list(languages),
    )
    program = AsrProgram(
        name=PROGRAM_NAME,
        description="Speech-to-text on GigaAM (gigaam-api, ONNX Runtime)",
        attribution=attribution,
        installed=True,
        version=__version__,
        models=[model],
        supports_transcript_streaming=True,
    )
    return Info(asr=[program])
