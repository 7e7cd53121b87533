"""``python -m gigaam_api`` — the same command line as the ``gigaam-api`` script.

Useful where the console script is not on PATH (a venv that is not activated, ``docker exec``).
"""

from gigaam_api.cli import main

raise SystemExit(main())
