"""The names before the WSGI/ASGI capitalisation still work for one release, with a
DeprecationWarning that names the new one."""

from __future__ import annotations

import importlib

import pytest

import crossgate
from crossgate._deprecated import REMOVED_IN

OLD_NAMES = [
    ("crossgate", "WsgiToAsgi", "WSGIToASGI"),
    ("crossgate", "AsgiToWsgi", "ASGIToWSGI"),
    ("crossgate", "WsgiDispatcher", "WSGIDispatcher"),
    ("crossgate", "WsgiFallback", "WSGIFallback"),
    ("crossgate.middleware", "WsgiDispatcher", "WSGIDispatcher"),
    ("crossgate.middleware", "WsgiFallback", "WSGIFallback"),
    ("crossgate.adapters.wsgi_to_asgi", "WsgiToAsgi", "WSGIToASGI"),
    ("crossgate.adapters.asgi_to_wsgi", "AsgiToWsgi", "ASGIToWSGI"),
    ("crossgate.middleware.dispatch", "WsgiDispatcher", "WSGIDispatcher"),
    ("crossgate.middleware.fallback", "WsgiFallback", "WSGIFallback"),
    ("crossgate.testing.strategies", "AsgiBehaviour", "ASGIBehaviour"),
    ("crossgate.testing.strategies", "AsgiCall", "ASGICall"),
    ("crossgate.testing.strategies", "ScriptedAsgiApp", "ScriptedASGIApp"),
    ("crossgate.testing.strategies", "ScriptedWsgiApp", "ScriptedWSGIApp"),
    ("crossgate.testing.strategies", "WsgiBehaviour", "WSGIBehaviour"),
    ("crossgate.testing.strategies", "WsgiCall", "WSGICall"),
]


@pytest.mark.parametrize(("module", "old", "new"), OLD_NAMES, ids=str)
def test_an_old_name_is_the_new_object_with_a_warning(module: str, old: str, new: str) -> None:
    namespace = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=rf"{module}\.{old} is renamed {new}") as seen:
        found = getattr(namespace, old)
    assert found is getattr(namespace, new)
    assert f"crossgate {REMOVED_IN}" in str(seen[0].message)
    # The warning points at the code that used the old name, not at crossgate.
    assert seen[0].filename == __file__
    # Old names are not advertised.
    assert old not in getattr(namespace, "__all__", ())


def test_from_import_of_an_old_name_warns() -> None:
    with pytest.warns(DeprecationWarning, match="WsgiToAsgi is renamed WSGIToASGI"):
        from crossgate import WsgiToAsgi  # noqa: PLC0415
    assert WsgiToAsgi is crossgate.WSGIToASGI


def test_an_unknown_name_is_still_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        _ = crossgate.NoSuchThing
