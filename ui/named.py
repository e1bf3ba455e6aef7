"""A tab's components by name, for Gradio's dict outputs.

Handlers return ``{name: value}`` for what they change (a failure changes only its status
line); the tab's ``Parts`` is the one place names meet components, so no handler depends
on the order of an output list and none pads outputs it leaves alone.
"""

from __future__ import annotations

from typing import Any


class Parts:
    """Named components; ``show`` turns a handler's ``{name: value}`` into Gradio's dict output."""

    def __init__(self, **components: Any) -> None:
        self.components = components

    def outputs(self, *names: str) -> list[Any]:
        """The components a handler may change (all of them when no name is given)."""
        return [self.components[name] for name in names] if names else list(self.components.values())

    def show(self, named: dict[str, Any]) -> dict[Any, Any]:
        if not named:  # Gradio reads an empty dict as one output's value, and fails the event
            raise ValueError("a handler must change something: return a gr.skip() for one part instead")
        unknown = set(named) - set(self.components)
        if unknown:  # a typo would otherwise change nothing without a word
            raise KeyError(f"no component named {sorted(unknown)}")
        return {self.components[name]: value for name, value in named.items()}
