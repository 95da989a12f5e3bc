"""hexavox-worker: asynchronous SMS, voice and email dispatch.

``celery -A worker worker|beat|flower`` finds the application here. It is loaded on first
access, so importing a small module such as ``worker.client`` or ``worker.catalogue`` does
not read the configuration or import every task.
"""

from __future__ import annotations

from typing import Any

__all__ = ["app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from worker.celery_app import app

        return app
    raise AttributeError(f"module 'worker' has no attribute {name!r}")
