"""What a door is given: the one core that every door of a server shares.

Built once per server by :func:`gigaam_api.server.create_app`. The HTTP layer's own context
(``api/context.py``, ``AppContext``) extends it with what only HTTP needs (the models' ``created``
time, the SSE keep-alive interval); the Wyoming door takes it as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gigaam_api.config import Settings
from gigaam_api.service.metrics import Metrics
from gigaam_api.service.model_service import ModelService


@dataclass
class ServiceContext:
    """The settings, the model service, the metrics and the spool folder of one server."""

    settings: Settings
    service: ModelService
    metrics: Metrics
    #: This server's own spool folder (:mod:`gigaam_api.service.spool`): HTTP uploads and
    #: Wyoming utterances are written here while they are transcribed.
    tmp_dir: Path
