"""The package root exports exactly its documented, flat public API."""

from __future__ import annotations

import importlib
import pkgutil

import crossgate
from crossgate.adapters import asgi_to_wsgi, calls, wsgi_to_asgi


def test_all_has_no_duplicates() -> None:
    # Its order is kept sorted by ruff (RUF022), which `scripts/check` runs.
    assert len(set(crossgate.__all__)) == len(crossgate.__all__)


def test_every_name_in_all_is_importable() -> None:
    for name in crossgate.__all__:
        assert hasattr(crossgate, name), name


def test_every_public_name_of_the_root_is_in_all() -> None:
    public = {
        name
        for name, value in vars(crossgate).items()
        if not name.startswith("_") and not isinstance(value, type(crossgate))
    } - {"annotations"}
    assert public == set(crossgate.__all__) - {"__version__"}


def test_every_module_declares_all() -> None:
    for info in pkgutil.walk_packages(crossgate.__path__, "crossgate."):
        module = importlib.import_module(info.name)
        if info.ispkg:
            continue
        assert isinstance(getattr(module, "__all__", None), list), info.name


def test_adapters_are_reexported_unchanged() -> None:
    assert crossgate.wsgi_to_asgi is wsgi_to_asgi.wsgi_to_asgi
    assert crossgate.asgi_to_wsgi is asgi_to_wsgi.asgi_to_wsgi
    assert crossgate.sync_to_async is calls.sync_to_async
    assert crossgate.async_to_sync is calls.async_to_sync
