"""A list of callbacks that are all called with the same arguments (state changes, gestures, triggers)."""

from __future__ import annotations

from collections.abc import Callable


class Listeners[*Args]:
    """Callbacks to call together; adding one returns the function that removes it."""

    def __init__(self) -> None:
        """Start with no callback."""
        self._callbacks: list[Callable[[*Args], None]] = []

    def add(self, callback: Callable[[*Args], None]) -> Callable[[], None]:
        """Add a callback and return its remover (for Entity.async_on_remove)."""
        self._callbacks.append(callback)
        return lambda: self._callbacks.remove(callback)

    def __call__(self, *args: *Args) -> None:
        """Call every callback (a callback may remove itself meanwhile)."""
        for callback in list(self._callbacks):
            callback(*args)
