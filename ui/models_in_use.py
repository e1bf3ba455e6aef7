"""Which models the app's engines use: the app's own (or, offline, the packaged one) and the
ones visitors picked, least recently used first."""

from __future__ import annotations

import threading

from engines.model.packaged import model_or_packaged


class ModelsInUse:
    """The configured model, resolved on first use, and the order visitors' picks were used in."""

    def __init__(self, configured: str, keep: int) -> None:
        self.configured, self.keep = configured, keep
        self._choice: tuple[str, str] | None = None
        self._picked: dict[str, None] = {}  # least recently used first
        self._lock = threading.Lock()

    def _resolved(self) -> tuple[str, str]:
        """(model, note): without the configured model (not cached, the Hub unreachable: a probe
        of a few seconds at most) images are searched with the packaged model, and the note says
        so. Decided on the first search, never at start-up."""
        with self._lock:
            if self._choice is None:
                self._choice = model_or_packaged(self.configured)
            return self._choice

    @property
    def model(self) -> str:
        return self._resolved()[0]

    @property
    def note(self) -> str:
        return self._resolved()[1]

    def is_own(self, model: str | None) -> bool:
        """Whether ``model`` names the app's own model (as configured, or as resolved)."""
        return not model or model == self.configured or model == self.model

    def picked(self, model: str) -> list[str]:
        """Note that a visitor's ``model`` is used now; the models to unload (beyond ``keep``)."""
        with self._lock:
            self._picked.pop(model, None)
            self._picked[model] = None
            stale = list(self._picked)[:-self.keep]
            for old in stale:
                del self._picked[old]
            return stale
