"""The one exception that means "stop: nobody wants this result any more".

The pipeline raises it between steps when its cancel flag is set, and the scheduler raises it
from a waiting ``infer`` when the request's ticket is cancelled; both are the same event seen
from two layers (client gone, server stopping), so the API maps a single type to its answer.
It lives in its own module because neither of those layers may import the other.
"""

from __future__ import annotations

__all__ = ["Cancelled"]


class Cancelled(Exception):
    """The work was cancelled (client gone, shutdown) before it finished."""
