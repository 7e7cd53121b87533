"""The ``language`` a request names, read once for every door.

Clients write it in many ways — ``ru``, ``ru-RU``, ``EN``, ``zh_CN``, empty, ``auto`` — and
the HTTP API, the Wyoming door and the CLI must read it alike before checking it against the
served model's languages (:attr:`~gigaam_api.service.model_service.ModelService.languages`):
the primary subtag, lower case; empty and ``auto`` mean "not given" (the model chooses).
"""

from __future__ import annotations

__all__ = ["normalise_language"]


def normalise_language(value: str | None) -> str | None:
    """``ru-RU`` → ``ru``, ``EN`` → ``en``; ``None``, empty and ``auto`` mean "not given"."""
    if value is None:
        return None
    primary = value.strip().lower().replace("_", "-").split("-")[0]
    return None if primary in ("", "auto") else primary
