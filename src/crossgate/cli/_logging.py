"""crossgate's records in the server's format, and ``--log-config`` read once, checked early.

Every crossgate logger is ``logging.getLogger(__name__)`` under ``crossgate``; ``serve``
gives the ``crossgate`` logger one stderr handler with the chosen server's format (and
waitress's logger too, which logs nothing without one), unless ``--log-config`` is given:
then the configuration decides, as it does for the server's own loggers.
"""

from __future__ import annotations

import configparser
import importlib
import json
import logging
import logging.config
import os
import sys
from typing import Any, Literal

from crossgate.cli._import import UsageError
from crossgate.cli._servers import TABLE

__all__ = ["LogConfig", "configure", "read_log_config"]


class _ServeHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``serve`` installs (so that a second call replaces, not adds)."""


class LogConfig:
    """A ``--log-config`` file: its kind by extension, and its content for dictConfig."""

    def __init__(self, path: str, kind: Literal["json", "yaml", "ini"], content: Any) -> None:
        self.path = path
        self.kind = kind
        #: The dictConfig dictionary (JSON, YAML); None for INI (fileConfig reads the path).
        self.content = content

    def apply(self) -> None:
        if self.kind == "ini":
            # Loggers crossgate made at import stay enabled, as uvicorn and hypercorn do.
            logging.config.fileConfig(self.path, disable_existing_loggers=False)
        else:
            logging.config.dictConfig(self.content)


def read_log_config(path: str) -> LogConfig:
    """Read and check a ``--log-config`` file; UsageError says what is wrong, in one line."""
    where = f"--log-config {path}"
    if not os.path.isfile(path):
        raise UsageError(f"{where}: no such file")
    lower = path.lower()
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where}: cannot read it ({exc})") from exc
    if lower.endswith(".json"):
        try:
            content = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where}: not JSON ({exc})") from exc
        return _checked(LogConfig(os.path.abspath(path), "json", content), where)
    if lower.endswith((".yaml", ".yml")):
        try:
            yaml = importlib.import_module("yaml")
        except ImportError:
            raise UsageError(
                f"{where}: reading YAML needs PyYAML (pip install pyyaml), or give JSON or INI"
            ) from None
        try:
            content = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise UsageError(f"{where}: not YAML ({' '.join(str(exc).split())})") from exc
        return _checked(LogConfig(os.path.abspath(path), "yaml", content), where)
    parser = configparser.ConfigParser()
    try:
        parser.read_string(text)
    except configparser.Error as exc:
        raise UsageError(f"{where}: not an INI file ({' '.join(str(exc).split())})") from exc
    if not parser.has_section("loggers"):
        raise UsageError(
            f"{where}: an INI file needs a [loggers] section (logging.config.fileConfig); "
            "a dictConfig goes in a .json or .yaml file"
        )
    return LogConfig(os.path.abspath(path), "ini", None)


def _checked(config: LogConfig, where: str) -> LogConfig:
    if not isinstance(config.content, dict) or config.content.get("version") != 1:
        raise UsageError(f"{where}: a dictConfig needs a mapping with 'version': 1")
    return config


def configure(server: str, level: str, log_config: str | None) -> None:
    """Set up crossgate's logging for ``server`` in this process.

    With ``log_config`` the file decides: applied here too, so that crossgate's records
    before the server starts (and all of them on waitress and wsgiref, which have no
    logging configuration of their own) follow it; the server applies it again. Otherwise
    crossgate's records go to stderr in the server's format, at ``level``.
    """
    if log_config is not None:
        read_log_config(log_config).apply()
        return
    handler = _ServeHandler(sys.stderr)
    handler.setFormatter(TABLE[server].formatter())
    for name in ("crossgate", "waitress"):
        log = logging.getLogger(name)
        for old in [h for h in log.handlers if isinstance(h, _ServeHandler)]:
            log.removeHandler(old)
        log.addHandler(handler)
        # Servers that log through the root logger (hypercorn) would print every line twice.
        log.propagate = False
        log.setLevel(level.upper())
