"""What the local commands (``serve``, ``download``, ``transcribe``) share: the exit codes,
:class:`CliError` and the settings a command runs with.

Its own module so that ``cli.py`` (which registers and dispatches every command) and the
command modules it imports (``download_cli.py``, ``transcribe_cli.py``) can all use it without
importing each other.

Exit codes: 0 success, 1 a runtime failure (weights, audio, model), 2 a usage or settings
error (the message names the variable), 130 interrupted.
"""

from __future__ import annotations

from gigaam_api.config import Settings, SettingsError, load_settings

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A failure to report as ``error: <message>`` with an exit code, without a traceback."""

    def __init__(self, message: str, code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


def command_settings(**overrides: object) -> Settings:
    """Settings from env/.env with command-line overrides; invalid → exit code 2.

    An override left ``None`` (a flag not given) keeps the setting. Logging is set up here,
    from the settings, so every command logs the way the server does.
    """
    try:
        settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    except SettingsError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    from gigaam_api.logging import configure_logging

    configure_logging(settings.log_level, settings.log_json)
    return settings
