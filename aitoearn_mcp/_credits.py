"""The credit cost of one call, estimated from the catalogue's pricing and the reply's usage.

The rule is the relay's public pricing calculator (see the README): a flat ``price`` per call,
or per-1,000-token rates from the first tier whose ``maxInputTokens`` admits the input, summed
over modalities, with cache tokens at their own rates. Prices are decimal strings, so the
arithmetic is ``Decimal`` throughout. The relay's own ledger is the truth; this is an estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["CreditEstimate", "estimate_credits", "plain_decimal"]

_THOUSAND = Decimal(1000)
_MODALITIES = ("text", "image", "video", "audio")


@dataclass(frozen=True)
class CreditEstimate:
    amount: Decimal
    basis: str

    def as_dict(self) -> dict[str, str]:
        return {"estimate": plain_decimal(self.amount), "basis": self.basis}


def plain_decimal(value: Decimal) -> str:
    """``Decimal("0.006800")`` → ``"0.0068"``: no exponent, no trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def _rate(rates: Any, name: str) -> Decimal | None:
    if not isinstance(rates, Mapping) or rates.get(name) in (None, ""):
        return None
    try:
        value = Decimal(str(rates[name]))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _count(usage: Mapping[str, Any], *path: str) -> int:
    node: Any = usage
    for name in path:
        node = node.get(name) if isinstance(node, Mapping) else None
    return node if isinstance(node, int) and node > 0 else 0


def _tier(tiers: list[Any], input_tokens: int) -> Mapping[str, Any] | None:
    usable = [t for t in tiers if isinstance(t, Mapping)]
    for tier in usable:
        limit = tier.get("maxInputTokens")
        if limit is None or (isinstance(limit, int | float) and limit >= input_tokens):
            return tier
    return usable[-1] if usable else None


def estimate_credits(pricing: Any, usage: Mapping[str, Any]) -> CreditEstimate | None:
    """The estimate for one call, or None when the pricing has no usable rates.

    ``usage`` is an Anthropic usage object: ``input_tokens`` (not cached),
    ``cache_read_input_tokens``, ``cache_creation_input_tokens`` (split by
    ``cache_creation.ephemeral_5m/1h_input_tokens`` when given), ``output_tokens``, and, when
    the provider counted them, ``input_tokens_by_modality`` / ``output_tokens_by_modality``
    (non-text counts; the rest is text).
    """
    if not isinstance(pricing, Mapping):
        return None
    if "price" in pricing:
        price = _rate(pricing, "price")
        return None if price is None else CreditEstimate(price, "a flat price per call, from list_models pricing")
    tiers = pricing.get("tiers")
    if not isinstance(tiers, list):
        return None

    uncached = _count(usage, "input_tokens")
    cache_read = _count(usage, "cache_read_input_tokens")
    write_5m = _count(usage, "cache_creation", "ephemeral_5m_input_tokens")
    write_1h = _count(usage, "cache_creation", "ephemeral_1h_input_tokens")
    # Without the split, every cache write counts as a 5-minute one (the Anthropic default).
    write_5m += max(0, _count(usage, "cache_creation_input_tokens") - write_5m - write_1h)
    total_input = uncached + cache_read + write_5m + write_1h
    tier = _tier(tiers, total_input)
    if tier is None:
        return None
    inputs, outputs = tier.get("input"), tier.get("output")
    text_in, text_out = _rate(inputs, "text"), _rate(outputs, "text")
    if text_in is None or text_out is None:
        return None

    terms: list[tuple[str, int, Decimal]] = []

    def by_modality(direction: str, tokens: int, rates: Any, text_rate: Decimal) -> None:
        other = usage.get(f"{direction}_tokens_by_modality")
        counts = {m: n for m, n in other.items() if m != "text" and isinstance(n, int) and n > 0} if isinstance(
            other, Mapping
        ) else {}  # fmt: skip
        rest = tokens
        for modality, count in counts.items():
            rest -= count
            terms.append((f"{direction} {modality}", count, _rate(rates, modality) or text_rate))
        terms.append((direction, max(rest, 0), text_rate))

    by_modality("input", uncached, inputs, text_in)
    terms.append(("cache read", cache_read, _rate(inputs, "cacheRead") or text_in))
    terms.append(("cache write 5m", write_5m, _rate(inputs, "cacheWrite5m") or text_in))
    terms.append(("cache write 1h", write_1h, _rate(inputs, "cacheWrite1h") or text_in))
    by_modality("output", _count(usage, "output_tokens"), outputs, text_out)

    amount = sum((Decimal(count) * rate / _THOUSAND for _, count, rate in terms), Decimal(0))
    shown = " + ".join(f"{count} {name} × {plain_decimal(rate)}" for name, count, rate in terms if count)
    where = f"tier {tiers.index(tier) + 1} of {len(tiers)}, " if len(tiers) > 1 else ""
    return CreditEstimate(amount, f"{shown or 'no tokens'} per 1K tokens, {where}from list_models pricing")
