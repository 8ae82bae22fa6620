"""Which of the relay's routes serves a model.

The relay has one route per protocol. The catalogue's ``channel`` says which protocol a model
speaks natively: ``anthropic`` models answer on the Anthropic Messages route, every model
answers on the OpenAI Chat Completions route.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["Route", "RoutePlan", "plan_route"]


class Route(StrEnum):
    MESSAGES = "messages"
    CHAT_COMPLETIONS = "chat-completions"

    @property
    def path(self) -> str:
        return "/api/ai/v1/messages" if self is Route.MESSAGES else "/api/ai/chat/completions"

    @property
    def protocol(self) -> str:
        return "Anthropic Messages" if self is Route.MESSAGES else "OpenAI Chat Completions"


@dataclass(frozen=True)
class RoutePlan:
    """The route to try first and, for a model the catalogue does not list, the one to try
    when the first answers "invalid model"."""

    first: Route
    fallback: Route | None = None

    @property
    def routes(self) -> tuple[Route, ...]:
        return (self.first,) if self.fallback is None else (self.first, self.fallback)


def plan_route(setting: str, entry: Mapping[str, Any] | None) -> RoutePlan:
    """``setting`` is AITOEARN_ROUTE; ``entry`` the model's catalogue entry, None when the
    catalogue does not list it (it can lag) or could not be fetched."""
    if setting != "auto":
        return RoutePlan(Route(setting))
    if entry is None:
        return RoutePlan(Route.MESSAGES, fallback=Route.CHAT_COMPLETIONS)
    return RoutePlan(Route.MESSAGES if entry.get("channel") == "anthropic" else Route.CHAT_COMPLETIONS)
