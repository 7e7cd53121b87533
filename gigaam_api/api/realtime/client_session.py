"""One connection's session as its client drives it: one handler per client event.

The door (:mod:`.door`) reads each message off the socket and hands the event here;
:meth:`ClientSession.dispatch` acts on it: ``session.update`` (either dialect) is read by
:mod:`.session_update` and checked as the HTTP door checks the same fields (``model``,
``language``, ``keywords``); ``input_audio_buffer.append`` is base64 decoded (G.711 expanded to
16-bit PCM) and pushed into the core's :class:`~gigaam_api.service.live.LiveSession`, created
with the first audio in the format then set; ``commit`` and ``clear`` are passed on; and this
server's ``session.finish`` is noted for the door to answer (:mod:`.recording`, which
also keeps the audio with ``?save=true``).

A handler raises :class:`~.session_config.WireError` (or the core's and the HTTP layer's own
errors) for an event it cannot follow; the door turns each into an ``error`` event and the
session goes on. Nothing here touches the socket: what the client is told goes out through the
``send`` and ``emit`` callbacks the door gives.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import anyio

from gigaam_api.api.context import AppContext
from gigaam_api.api.errors import ApiError
from gigaam_api.api.params import check_language, check_model
from gigaam_api.api.realtime.recording import FINISH_EVENT, LiveRecording
from gigaam_api.api.realtime.server_events import expiry, session_event
from gigaam_api.api.realtime.session_config import Dialect, SessionConfig, WireError
from gigaam_api.api.realtime.session_update import parse_session_update
from gigaam_api.audio import RawFormat
from gigaam_api.audio.g711 import expand
from gigaam_api.keyword_list import KeywordListError, parse_entries
from gigaam_api.service.errors import ServiceError
from gigaam_api.service.keywords import Keyword, keywords_of
from gigaam_api.service.languages import normalise_language
from gigaam_api.service.live import LiveSession
from gigaam_api.service.live_events import LiveEvent, LiveOptions

__all__ = ["ClientSession"]


class ClientSession:
    """A connection's session state (see the module doc): its configuration, the core's live
    session once audio came, and the recording. Used on the event loop only."""

    def __init__(
        self,
        ctx: AppContext,
        dialect: Dialect,
        *,
        app: Any,
        save: bool,
        send: Callable[[dict[str, Any]], None],
        emit: Callable[[LiveEvent], None],
    ) -> None:
        self.ctx = ctx
        self.settings = ctx.settings
        self.dialect: Dialect = dialect
        self.id = f"sess_{uuid.uuid4().hex[:20]}"
        self.config = SessionConfig()
        self.expires_at = expiry(self.settings.realtime_max_session_seconds)
        self.live: LiveSession | None = None
        #: ``audio.input.transcription.keywords`` as read and checked (``KEYWORDS`` is merged
        #: in when each turn's session compiles them).
        self.keywords: tuple[Keyword, ...] = ()
        # this server's extensions (api/realtime/recording.py): session.finish, and ?save=true
        self.recording: LiveRecording | None = None
        #: The client sent ``session.finish``: the door answers it and closes.
        self.finishing = False
        self._app = app
        self._save = save
        self._send = send
        self._emit = emit

    def created(self) -> dict[str, Any]:
        """The ``session.created`` event a new connection is greeted with."""
        return session_event("created", self.dialect, self.id, self.config, self.expires_at)

    async def dispatch(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind in ("session.update", "transcription_session.update"):
            await self._update(event, "beta" if kind == "transcription_session.update" else "ga")
        elif kind == "input_audio_buffer.append":
            self._append(event)
        elif kind == "input_audio_buffer.commit":
            self._only(event, "input_audio_buffer.commit")
            self._session().commit()
        elif kind == FINISH_EVENT:
            self._only(event, FINISH_EVENT)
            self.finishing = True
        elif kind == "input_audio_buffer.clear":
            self._only(event, "input_audio_buffer.clear")
            self._session().clear()
        elif isinstance(kind, str):
            raise WireError(
                f"Invalid value: '{kind}'. This server serves transcription sessions: "
                "session.update, transcription_session.update, input_audio_buffer.append, "
                "input_audio_buffer.commit and input_audio_buffer.clear.",
                param="type",
                code="invalid_event",
            )
        else:
            raise WireError("An event needs a string 'type'.", param="type", code="invalid_event")

    @staticmethod
    def _only(event: Mapping[str, Any], name: str, *extra: str) -> None:
        for key in event:
            if key not in ("type", "event_id", *extra):
                raise WireError(
                    f"Unknown parameter: '{key}' in {name}.", param=key, code="unknown_parameter"
                )

    async def _update(self, event: Mapping[str, Any], dialect: Dialect) -> None:
        self._only(event, str(event.get("type")), "session")
        config = parse_session_update(event, self.config)
        where = (
            "session.audio.input.transcription"
            if dialect == "ga"
            else "session.input_audio_transcription"
        )
        try:  # the HTTP door's own checks, their param named as the session's field
            check_model(config.model, self.settings)
            language = normalise_language(config.language)
            check_language(language, self.ctx.service.languages, self.settings.model)
        except ApiError as exc:
            raise WireError(
                exc.message, param=f"{where}.{exc.param}", code=exc.code or ""
            ) from None
        keywords = self.keywords
        if config.keywords != self.config.keywords:
            keywords = await self._keywords(config.keywords, f"{where}.keywords")
        if self.live is not None and config.format != self.config.format:
            raise WireError(
                "The audio format cannot change once audio was sent: open a new session.",
                param="session.audio.input.format"
                if dialect == "ga"
                else "session.input_audio_format",
            )
        self.config = config
        self.keywords = keywords
        self.dialect = dialect
        if self.live is not None:
            self.live.configure(self._options())
        self._send(session_event("updated", dialect, self.id, config, self.expires_at))

    async def _keywords(self, entries: tuple[str, ...], param: str) -> tuple[Keyword, ...]:
        """The session's ``keywords`` read as every door reads them (``keyword_list.py``) and
        checked against the served model, off the event loop (a first compile of a long list
        takes a moment), so a phrase it cannot write is an ``error`` naming it now rather than
        a failed turn later."""
        try:
            specs = parse_entries(entries, max_boost=self.settings.keywords_max_boost)
        except KeywordListError as exc:
            raise WireError(exc.message, param=param, code="invalid_value") from None
        keywords = keywords_of(specs)
        try:
            await anyio.to_thread.run_sync(self.ctx.service.check_keywords, keywords)
        except ServiceError as exc:
            raise WireError(exc.message, param=param, code=exc.code or "invalid_value") from None
        return keywords

    def _options(self) -> LiveOptions:
        return LiveOptions(
            turn_detection=self.config.turn_detection,
            language=normalise_language(self.config.language),
            keywords=self.keywords,
        )

    def _session(self) -> LiveSession:
        if self.live is None:
            fmt = self.config.format
            self.live = LiveSession(
                self.ctx.service,
                self.settings,
                RawFormat(fmt.pcm_rate, 2, 1),
                self._options(),
                self._emit,
                session_id=self.id,
            )
            self.recording = LiveRecording.for_app(self._app, self.live.format, self._save)
        return self.live

    def _append(self, event: Mapping[str, Any]) -> None:
        self._only(event, "input_audio_buffer.append", "audio")
        audio = event.get("audio")
        if not isinstance(audio, str):
            raise WireError("'audio' must be a base64 string.", param="audio")
        try:
            payload = base64.b64decode(audio, validate=True)
        except (binascii.Error, ValueError):
            raise WireError("'audio' is not valid base64.", param="audio") from None
        law = self.config.format.law
        if law is not None:
            payload = expand(payload, law)
        elif len(payload) % 2:
            raise WireError(
                f"'audio' holds {len(payload)} bytes: 16-bit PCM needs a whole number of "
                "2-byte samples.",
                param="audio",
                code="invalid_audio_format",
            )
        if payload:
            self._session().append(payload)
            if self.recording is not None:
                self.recording.push(payload)
