"""The recipe of docs/deployment-waitress.md: the FastAPI app for ``waitress-serve``, whose
lifespan shutdown then runs when the process gets SIGTERM.

waitress installs no SIGTERM handler, so the signal ends the process at once, and atexit,
where crossgate runs the ASGI app's lifespan shutdown, never runs. This module, which
waitress-serve imports in its main thread, makes SIGTERM raise ``SystemExit`` there:
waitress's ``server.run()`` catches it and closes the server (its threads get 5 s to finish
their requests), ``waitress-serve`` returns, and the interpreter exits as usual, running
atexit.
"""

from __future__ import annotations

import signal
from types import FrameType

from tests.integration.apps_asgi.fastapi_app import application

__all__ = ["application"]


def _stop(signum: int, frame: FrameType | None) -> None:
    signal.signal(signum, signal.SIG_DFL)  # a second SIGTERM ends the process at once
    raise SystemExit(0)


signal.signal(signal.SIGTERM, _stop)
