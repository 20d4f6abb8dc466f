"""Where the optional material beside a checkout lives: ``../shared`` (real footage, release weights,
the peers' model files). Commands default to it when it is present; nothing requires it."""
from __future__ import annotations

import os

SHARED = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "shared"))


def shared_path(*parts: str) -> str:
    """A path under ``../shared``, whether or not it exists."""
    return os.path.join(SHARED, *parts)
