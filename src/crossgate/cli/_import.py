"""Finding the application named on the command line, and telling WSGI from ASGI."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import traceback
from typing import Literal

from crossgate import is_asgi_app, is_wsgi_app

__all__ = ["Interface", "UsageError", "describe", "detect_interface", "import_app"]

Interface = Literal["asgi", "wsgi"]


class UsageError(Exception):
    """A mistake on the command line or in APP: shown as one line, exit status 2.

    The exception that caused it, if any, is its ``__cause__``; ``--log-level debug``
    shows that one's traceback.
    """


def describe(exc: BaseException) -> str:
    """One line: the exception and where it was raised (the user's file, usually)."""
    text = " ".join(str(exc).split())
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if frames and not isinstance(exc, SyntaxError):  # a SyntaxError's text names its line
        frame = frames[-1]
        where = f" ({frame.filename}, line {frame.lineno})"
    return f"{type(exc).__name__}: {text}{where}" if text else f"{type(exc).__name__}{where}"


def _colon_hint(module_name: str) -> str:
    """``main.app`` for ``main:app``: a hint when the part before the last dot imports."""
    head, _, tail = module_name.rpartition(".")
    if not head or not tail.isidentifier():
        return ""
    try:
        found = importlib.util.find_spec(head) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        found = False
    if not found:
        return ""
    return f" (did you mean {head}:{tail}? a colon separates the module from the app)"


def import_app(spec: str, *, app_dir: str = ".", factory: bool = False) -> object:
    """Import ``module:attr.path`` (``:app``, then ``:application``, when omitted).

    ``app_dir`` goes first on ``sys.path``. With ``factory`` the object found is called
    with no arguments and its result is the application. Every failure is a
    :class:`UsageError` with a one-line message.
    """
    module_name, colon, attrs = spec.partition(":")
    if not module_name or ":" in attrs or attrs.startswith(".") or attrs.endswith("."):
        raise UsageError(f"{spec!r} is not of the form module:app (for example myproject:app)")
    if module_name.endswith(".py") or os.sep in module_name or "/" in module_name:
        raise UsageError(
            f"{module_name!r} is a file path; give a module name (package.module) and, if "
            "needed, --app-dir for the directory it lives in"
        )
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            hint = "" if colon else _colon_hint(module_name)
            raise UsageError(
                f"cannot import {module_name!r}: no module named {missing!r}{hint}"
            ) from exc
        raise UsageError(f"importing {module_name!r} failed: {describe(exc)}") from exc
    except Exception as exc:
        raise UsageError(f"importing {module_name!r} failed: {describe(exc)}") from exc

    obj: object = module
    if not attrs:
        for name in ("app", "application"):
            if hasattr(module, name):
                obj, attrs = getattr(module, name), name
                break
        else:
            raise UsageError(
                f"module {module_name!r} has no 'app' or 'application'; name the "
                f"application as {module_name}:NAME"
            )
    else:
        found = module_name
        for part in attrs.split("."):
            if not part.isidentifier():
                raise UsageError(f"{attrs!r} in {spec!r} is not a dotted attribute path")
            try:
                obj = getattr(obj, part)
            except AttributeError:
                owner = (
                    f"module {module_name!r}"
                    if obj is module
                    else f"{found} (a {type(obj).__name__})"
                )
                raise UsageError(f"{owner} has no attribute {part!r}") from None
            except Exception as exc:
                raise UsageError(f"getting {spec!r} failed: {describe(exc)}") from exc
            found = f"{module_name}:{part}" if found == module_name else f"{found}.{part}"
    where = f"{module_name}:{attrs}"
    if factory:
        if not callable(obj):
            raise UsageError(f"{where} is a {type(obj).__name__}, not a factory (not callable)")
        try:
            obj = obj()
        except Exception as exc:
            raise UsageError(f"the factory {where}() failed: {describe(exc)}") from exc
    if not callable(obj):
        raise UsageError(
            f"{where} is a {type(obj).__name__}, not an ASGI or WSGI application (not callable)"
        )
    return obj


def detect_interface(app: object, name: str = "the app") -> Interface:
    """``"asgi"`` or ``"wsgi"`` as :func:`crossgate.is_asgi_app` and
    :func:`crossgate.is_wsgi_app` tell (an async callable is ASGI 3, a sync callable of two
    arguments WSGI, of one an ASGI 2 double callable); :class:`UsageError` when neither can.
    """
    if is_asgi_app(app):
        return "asgi"
    if is_wsgi_app(app):
        return "wsgi"
    raise UsageError(
        f"cannot tell whether {name} (a {type(app).__name__}) is an ASGI or a WSGI "
        "application; say which with --interface asgi or --interface wsgi"
    )
