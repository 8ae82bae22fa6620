"""Choosing a model by what the caller wrote: an exact catalogue name, a family alias derived
from the catalogue (``gemini``: its newest chat model), an alias the server's owner set
(``AITOEARN_MODEL_ALIASES``), all within the allowlist (``AITOEARN_MODELS``). Pure: the caller
hands in the cached catalogue, so an alias moves when the catalogue refreshes.

The flagship rule (docs/tools.md): among the family's models whose output is text only, the
highest generation (the first number in the name), then the flagship tier (``_TIERS``), then
the whole version, then catalogue order.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Protocol, TypeVar

from .._errors import InputError

__all__ = [
    "AliasCache", "Aliases", "Choice", "allowed", "allowed_within", "check_allowed", "check_media_model", "family_of",
    "flagships", "names_list", "not_allowed",
]  # fmt: skip

# Tier words, strongest first; a name with none of them ranks between "sonnet" and "flash".
_TIERS = ("ultra", "opus", "pro", "max", "plus", "sonnet", "", "flash", "haiku", "mini", "lite", "nano")
_NEUTRAL = _TIERS.index("")
_NUMBERS = re.compile(r"\d+(?:\.\d+)*")
NAMES_SHOWN = 40  # catalogue names listed in a refusal


@dataclass(frozen=True)
class Choice:
    """``model``: the name sent to the relay; ``asked``: what the caller wrote; ``how``: why an
    alias meant this model ("" when ``asked`` is the model)."""

    model: str
    asked: str
    how: str = ""


def family_of(name: str) -> str:
    """A model's family: the first dash-separated word of its name, lower-cased."""
    return name.split("-", 1)[0].lower()


def _text_only(entry: Mapping[str, Any]) -> bool:
    outputs = entry.get("outputModalities")
    return not isinstance(outputs, list) or not outputs or {str(m).lower() for m in outputs} == {"text"}


def _rank(name: str, position: int) -> tuple[Any, ...]:
    """Sort key, best first when sorted in reverse."""
    rest = name.lower().split("-")[1:]
    version = tuple(int(n) for found in _NUMBERS.findall("-".join(rest)) for n in found.split(".") if len(n) < 6)
    tier = min((_TIERS.index(word) for word in rest if word in _TIERS), default=_NEUTRAL)
    return (version[:1], -tier, version, -position)


def flagships(entries: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """Each family's flagship chat model, by the rule above: family → model name."""
    best: dict[str, tuple[tuple[Any, ...], str]] = {}
    for position, entry in enumerate(entries):
        name = str(entry.get("name") or "")
        if not name or not _text_only(entry):
            continue
        family, rank = family_of(name), _rank(name, position)
        if family not in best or rank > best[family][0]:
            best[family] = (rank, name)
    return {family: name for family, (_, name) in best.items()}


def allowed(name: str, patterns: Iterable[str]) -> bool:
    """Within the allowlist (names or glob patterns; none: every model)."""
    patterns = tuple(patterns)
    return not patterns or any(fnmatchcase(name, pattern) for pattern in patterns)


def names_list(names: Sequence[str]) -> str:
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown + (f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else "")


def not_allowed(name: str, patterns: Sequence[str], listed: Sequence[str], *, tool: str, field: str,
                kind: str = "") -> str:  # fmt: skip
    """Why ``name`` is refused: outside AITOEARN_MODELS, naming the setting and ``listed`` (the
    allowed models of the catalogue; ``kind``: which catalogue, "" for chat)."""
    models = f"{kind} models" if kind else "models"
    choices = f"the allowed {models} in the catalogue are {names_list(listed)}" if listed else (
        f"the allowed names are {', '.join(patterns)}")  # fmt: skip
    return (f"Invalid arguments for {tool}: `{field}` {name!r} is not allowed on this server (AITOEARN_MODELS="
            f"{','.join(patterns)}); fix: {choices}.")  # fmt: skip


def check_allowed(
    name: str, patterns: Sequence[str], entries: Sequence[Mapping[str, Any]], *, tool: str, field: str
) -> None:
    """Raise InputError when ``name`` is outside AITOEARN_MODELS; the one check every tool that
    takes a model calls. The refusal names the setting and the allowed models."""
    if allowed(name, patterns):
        return
    listed = [str(e["name"]) for e in entries if allowed(str(e.get("name") or ""), patterns)]
    raise InputError(f"{not_allowed(name, patterns, listed, tool=tool, field=field)} Nothing was sent.")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


_NamedT = TypeVar("_NamedT", bound=_Named)


def allowed_within(models: Sequence[_NamedT], patterns: Sequence[str]) -> list[_NamedT]:
    """The catalogue's models within AITOEARN_MODELS (every one when it is not set), in order."""
    return [model for model in models if allowed(model.name, patterns)]


def check_media_model(asked: str | None, patterns: Sequence[str], names: Sequence[str], *, tool: str,
                      kind: str) -> str:  # fmt: skip
    """The model name a media tool goes on with, within AITOEARN_MODELS: ``asked`` (matched to
    ``names``, the catalogue's, as the media checks match: exactly, else ignoring case), or when
    it is None the first allowed name ("" when the catalogue lists none: the tool's own check
    refuses that). InputError, naming the setting and the allowed ``kind`` models, when the name
    or every listed model is outside the allowlist."""
    listed = [name for name in names if allowed(name, patterns)]
    if names and not listed:
        raise InputError(
            f"Invalid arguments for {tool}: no {kind} model in the catalogue is allowed on this server "
            f"(AITOEARN_MODELS={','.join(patterns)}; the catalogue lists {names_list(list(names))}); fix: ask the "
            f"server's owner to allow one in AITOEARN_MODELS. Nothing was sent."
        )
    if asked is None:
        return listed[0] if listed else ""
    wanted = asked.strip()
    exact = next((name for name in names if name == wanted), None)
    found = exact or next((name for name in names if name.lower() == wanted.lower()), wanted)
    if not allowed(found, patterns):
        refusal = not_allowed(asked, patterns, listed, tool=tool, field="model", kind=kind)
        raise InputError(f"{refusal} Nothing was sent.")
    return asked


class Aliases:
    """The aliases in effect over one catalogue version: the families it lists, then the
    configured pairs (which add or override); an exact catalogue name always wins over both."""

    def __init__(self, entries: Sequence[Mapping[str, Any]], configured: Sequence[tuple[str, str]],
                 patterns: Sequence[str]) -> None:  # fmt: skip
        self.entries = [e for e in entries if allowed(str(e.get("name") or ""), patterns)]
        self.names = {str(e.get("name")) for e in self.entries}
        self.catalogue_read = bool(entries)
        self.families = flagships(self.entries)
        self.configured = dict(configured)

    def table(self) -> dict[str, str]:
        """Every alias → the model it means now (an alias that matches nothing is left out)."""
        found: dict[str, str] = {}
        for alias in [*self.families, *self.configured]:
            if alias in self.names:
                continue
            choice = self._alias(alias)
            if choice is not None:
                found[alias] = choice.model
        return found

    def unmatched(self) -> list[str]:
        """Configured aliases that mean no model of this catalogue."""
        return [alias for alias in self.configured if alias not in self.names and self._alias(alias) is None]

    def _alias(self, alias: str) -> Choice | None:
        target = self.configured.get(alias)
        if target is not None:
            said = f"AITOEARN_MODEL_ALIASES {alias}={target}"
            if target in self.names:
                return Choice(target, alias, said)
            if (flagship := self.families.get(target.lower())) is not None:
                return Choice(flagship, alias, f"{said}, the newest {target.lower()} chat model in the catalogue")
            return None
        flagship = self.families.get(alias.lower())
        return None if flagship is None else Choice(flagship, alias, f"the newest {alias.lower()} chat model "
                                                                      "in the catalogue")  # fmt: skip

    def resolve(self, asked: str, *, tool: str = "send_message", field: str = "model") -> Choice:
        """The model ``asked`` means. A name neither listed nor an alias passes unchanged (the
        catalogue can lag: the relay is the authority); a configured alias that matches nothing
        is refused (InputError) with the catalogue's names."""
        if asked in self.names:
            return Choice(asked, asked)
        choice = self._alias(asked)
        if choice is not None:
            return choice
        if asked in self.configured:
            target = self.configured[asked]
            if not self.catalogue_read:  # nothing to check it against: the relay decides
                return Choice(target, asked, f"AITOEARN_MODEL_ALIASES {asked}={target}")
            listed = sorted(self.names)
            raise InputError(
                f"Invalid arguments for {tool}: `{field}` {asked!r} is an alias (AITOEARN_MODEL_ALIASES {asked}="
                f"{target}) that matches no model in the catalogue; fix: pass one of list_models' names "
                f"({names_list(listed)}), or correct AITOEARN_MODEL_ALIASES. Nothing was sent."
            )
        return Choice(asked, asked)


class AliasCache:
    """The aliases built once per catalogue version and setting, not once per call: the catalogue
    replaces its list when it refreshes, so the list's identity names the version. The lists are
    held, so an identity is never reused while remembered; the least recently used go first."""

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._built: OrderedDict[int, tuple[Sequence[Mapping[str, Any]], tuple[Any, ...], Aliases]] = OrderedDict()

    def get(self, entries: Sequence[Mapping[str, Any]], configured: Sequence[tuple[str, str]],
            patterns: Sequence[str]) -> Aliases:  # fmt: skip
        setting = (tuple(configured), tuple(patterns))
        found = self._built.get(id(entries))
        if found is not None and found[0] is entries and found[1] == setting:
            self._built.move_to_end(id(entries))
            return found[2]
        aliases = Aliases(entries, configured, patterns)
        self._built[id(entries)] = (entries, setting, aliases)
        while len(self._built) > self._size:
            self._built.popitem(last=False)
        return aliases
