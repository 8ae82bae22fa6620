"""Which of the relay's routes serves a model.

The relay has one route per protocol. The catalogue's ``channel`` says which protocol a model
speaks natively: ``anthropic`` models answer on the Anthropic Messages route, every model
answers on the OpenAI Chat Completions route. Models whose entry outputs images (the Gemini
image previews) go to the relay's Gemini route, the one that returns their images as data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import quote

__all__ = ["Route", "RoutePlan", "outputs_images", "plan_route"]

_PATHS = {
    "messages": "/api/ai/v1/messages",
    "chat-completions": "/api/ai/chat/completions",
    # alt=sse: Google's own form for a stream of SSE events (what the genai SDKs ask for).
    "gemini": "/api/ai/v1beta/models/{model}:streamGenerateContent?alt=sse",
}
_PROTOCOLS = {"messages": "Anthropic Messages", "chat-completions": "OpenAI Chat Completions",
              "gemini": "Gemini streamGenerateContent"}  # fmt: skip


class Route(StrEnum):
    MESSAGES = "messages"
    CHAT_COMPLETIONS = "chat-completions"
    GEMINI = "gemini"

    @property
    def path(self) -> str:
        """The path; the Gemini route's names the model (``path_for``)."""
        return _PATHS[self.value]

    def path_for(self, model: str) -> str:
        return self.path.replace("{model}", quote(model, safe=""))

    @property
    def protocol(self) -> str:
        return _PROTOCOLS[self.value]


@dataclass(frozen=True)
class RoutePlan:
    """The route to try first and the one to try when the first answers "invalid model": for a
    model the catalogue does not list, or one whose images only the Gemini route was thought to
    return (that is not confirmed; every model answers on Chat Completions)."""

    first: Route
    fallback: Route | None = None

    @property
    def routes(self) -> tuple[Route, ...]:
        return (self.first,) if self.fallback is None else (self.first, self.fallback)


def outputs_images(entry: Mapping[str, Any] | None) -> bool:
    """The catalogue entry lists ``image`` among its ``outputModalities``."""
    found = entry.get("outputModalities") if entry else None
    return isinstance(found, list) and any(str(m).lower() == "image" for m in found)


def plan_route(setting: str, entry: Mapping[str, Any] | None) -> RoutePlan:
    """``setting`` is AITOEARN_ROUTE; ``entry`` the model's catalogue entry, None when the
    catalogue does not list it (it can lag) or could not be fetched."""
    if setting != "auto":
        return RoutePlan(Route(setting))
    if entry is None:
        return RoutePlan(Route.MESSAGES, fallback=Route.CHAT_COMPLETIONS)
    if outputs_images(entry):
        return RoutePlan(Route.GEMINI, fallback=Route.CHAT_COMPLETIONS)
    return RoutePlan(Route.MESSAGES if entry.get("channel") == "anthropic" else Route.CHAT_COMPLETIONS)
