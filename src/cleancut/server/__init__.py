"""``cleancut serve``: an HTTP API and a web page that cuts out photos in the browser or on the server.

Importing this package is cheap and needs no server dependency: :func:`create_app` pulls in
FastAPI only when called, so ``cleancut --help`` stays fast and works without the ``server``
extra (``pip install 'cleancut[server]'``).

>>> from cleancut.server import ServerSettings, create_app     # doctest: +SKIP
>>> app = create_app(ServerSettings())                          # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .settings import ServerSettings

if TYPE_CHECKING:
    from fastapi import FastAPI

__all__ = ["ServerSettings", "create_app"]


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The ASGI application (FastAPI). The model loads in the background at start-up."""
    from .app import create_app as _create_app

    return _create_app(settings if settings is not None else ServerSettings())
