"""Old names kept for one release after a rename, each warning where it is looked up.

A module lists its old names and defines ``__getattr__`` with :func:`renamed`; PEP 562
(https://peps.python.org/pep-0562/) calls it only for a name the module does not have, so
the current names cost nothing.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["REMOVED_IN", "renamed"]

#: The release in which the old names go.
REMOVED_IN = "0.2"


def renamed(
    module: str, names: Mapping[str, str], namespace: Mapping[str, Any]
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that answers each old name in ``names`` with the object of
    its new name in ``namespace``, with a :class:`DeprecationWarning`; any other name is an
    :class:`AttributeError`, as without it."""

    def lookup(name: str) -> Any:
        new = names.get(name)
        if new is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"{module}.{name} is renamed {new}; the old name goes in crossgate {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=3,
        )
        return namespace[new]

    return lookup
