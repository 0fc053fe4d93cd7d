"""Named states with a table of allowed moves, for the state machines of the adapters
(a request body, a WSGI response) and of the bridge (a thread-sensitive lane).

Each machine keeps its state in one attribute, changed in one ``_move`` method that looks
the move up in its table (``{state: frozenset of states it may move to}``) and raises
:func:`refused_move` for any other, as h11's ``_state.py`` does.
"""

from __future__ import annotations

import enum

__all__ = ["State", "refused_move"]


class State(enum.Enum):
    """Base of crossgate's state enums. Members are singletons, hashed by identity (in C):
    Enum's own ``__hash__`` is a Python call, and a move looks its state up in a table."""

    __hash__ = object.__hash__


def refused_move(what: str, current: State, new: State) -> RuntimeError:
    """The error for a move the table does not allow (a bug in crossgate, not the app's)."""
    return RuntimeError(f"{what} cannot go from {current.value} to {new.value}")
