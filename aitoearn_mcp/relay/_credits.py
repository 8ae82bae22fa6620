"""The credit cost of one call, estimated from the catalogue's pricing and the reply's usage.

The rule is the relay's public pricing calculator (see the README): a flat ``price`` per call,
or per-1,000-token rates from the first tier whose ``maxInputTokens`` admits the input, summed
over modalities, with cache tokens at their own rates. Prices are decimal strings, so the
arithmetic is ``Decimal`` throughout. The relay's own ledger is the truth; this is an estimate.

Prices and counts are the relay's text: an absurd one (``1e999999999``, a million digits) makes
no estimate rather than an overflow, a 10 MB number or a stalled event loop, and no failure here
ever costs the reply it is computed for. Pricing, usage and bodies are JSON as decoded: objects
are ``dict`` (checked as such: an ABC check would cost more than the arithmetic).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation, localcontext
from typing import Any

__all__ = [
    "CreditEstimate",
    "estimate_credits",
    "estimate_reply_credits",
    "estimate_request_credits",
    "plain_decimal",
    "request_tokens",
]

_THOUSAND = Decimal(1000)
_MODALITIES = ("text", "image", "video", "audio")
# A usable price is a short decimal between 1e-12 and 1e12 credits; a usable count is below 1e12
# tokens. Within these every product and sum is exact at 40 digits and prints in under 60 characters.
_MAX_PRICE_CHARS = 40
_MAX_EXPONENT = 12
_MAX_TOKENS = 10**12
MEDIA_BLOCK_TOKENS = 1600  # an image or document block, whatever its bytes (a 1568 px image is about 1,600 tokens)
_CONTEXT = Context(prec=40, Emax=100, Emin=-100)  # traps Overflow and InvalidOperation, as the default


class _Unusable(Exception):
    """A price or count no estimate can be made from."""


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
    """The price, or None when there is none; _Unusable when there is one but it is absurd."""
    if not isinstance(rates, dict) or rates.get(name) in (None, ""):
        return None
    text = rates[name] if isinstance(rates[name], str) else repr(rates[name])
    if len(text) > _MAX_PRICE_CHARS:
        raise _Unusable
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite() or value < 0 or (value and not -_MAX_EXPONENT <= value.adjusted() <= _MAX_EXPONENT):
        raise _Unusable
    return value


def _count(usage: Mapping[str, Any], *path: str) -> int:
    node: Any = usage
    for name in path:
        node = node.get(name) if isinstance(node, dict) else None
    if not isinstance(node, int) or node <= 0:
        return 0
    if node >= _MAX_TOKENS:
        raise _Unusable
    return node


def _tier(tiers: list[Any], input_tokens: int) -> Mapping[str, Any] | None:
    usable = [t for t in tiers if isinstance(t, dict)]
    for tier in usable:
        limit = tier.get("maxInputTokens")
        if limit is None or (isinstance(limit, int | float) and limit >= input_tokens):
            return tier
    return usable[-1] if usable else None


def estimate_credits(pricing: Any, usage: Mapping[str, Any]) -> CreditEstimate | None:
    """The estimate for one call, or None when the pricing has no usable rates (or a price or
    count is absurd: no estimate is better than a wrong one). Never raises."""
    try:
        with localcontext(_CONTEXT):
            return _estimate(pricing, usage)
    except Exception:  # an estimate must never cost the reply it is made for
        return None


def estimate_reply_credits(pricing: Any, message: Mapping[str, Any]) -> CreditEstimate | None:
    """The estimate for a reply as it arrived. When the relay sent no final usage (the reply
    stopped early, so the usage is message_start's; or it reported no output at all), the output
    is estimated from the characters that arrived, and the basis says so."""
    try:
        return _estimate_reply(pricing, message)
    except Exception:  # as above
        return None


def _estimate_reply(pricing: Any, message: Mapping[str, Any]) -> CreditEstimate | None:
    usage = message.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    chars, tokens = _output_size(message)
    reported = usage.get("output_tokens")
    reported = reported if isinstance(reported, int) else 0
    final = message.get("stop_reason") is not None and reported > 0
    if final or tokens <= reported:
        return estimate_credits(pricing, usage)
    estimate = estimate_credits(pricing, {**usage, "output_tokens": tokens})
    if estimate is None:
        return None
    why = "the reply stopped before the relay reported usage" if message.get("stop_reason") is None else (
        "the relay reported no output tokens")  # fmt: skip
    uncounted = "" if _count(usage, "input_tokens") else "; the input is not counted (no input tokens reported)"
    return CreditEstimate(
        estimate.amount,
        f"{estimate.basis}; the {tokens:,} output tokens are estimated from the {chars:,} characters that "
        f"arrived (about 4 ASCII characters or 1 other character a token), since {why}{uncounted}",
    )


def request_tokens(body: Any) -> int:
    """The input tokens a request body (either route's JSON) makes, estimated: about 4 ASCII
    characters or 1 other character a token for its text, and ``MEDIA_BLOCK_TOKENS`` for each
    base64 payload (an image or a document), not its size in characters."""
    ascii_chars = other = media = 0
    strings: list[str] = []
    stack = [body]
    while stack:  # the strings gathered first, then counted: a fifty-turn body has hundreds
        node = stack.pop()
        if isinstance(node, dict):
            for name, value in node.items():
                if isinstance(value, str):
                    if name == "data" or (name == "url" and value.startswith("data:")):
                        media += 1
                    else:
                        strings.append(value)
                else:
                    stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, str):
            strings.append(node)
    for text in strings:
        if text.isascii():
            ascii_chars += len(text)
        else:
            count = len(text.encode("ascii", "ignore"))
            ascii_chars += count
            other += len(text) - count
    return math.ceil(ascii_chars / 4) + other + media * MEDIA_BLOCK_TOKENS


def estimate_request_credits(pricing: Any, body: Any, max_tokens: int) -> CreditEstimate | None:
    """What a request may cost before it is sent: its input (``request_tokens``) plus
    ``max_tokens`` of output, at the catalogue's prices. None when there is no usable price."""
    return estimate_credits(pricing, {"input_tokens": request_tokens(body), "output_tokens": max_tokens})


def _output_size(message: Mapping[str, Any]) -> tuple[int, int]:
    """Characters of output in the message (text, thinking, tool input) and the tokens they make."""
    ascii_chars = other = 0
    for block in message.get("content") or ():
        if not isinstance(block, dict):
            continue
        for name in ("text", "thinking", "input"):
            value = block.get(name)
            if name == "input" and value not in (None, {}):
                value = repr(value)
            if isinstance(value, str) and value:
                count = len(value.encode("ascii", "ignore"))
                ascii_chars += count
                other += len(value) - count
    return ascii_chars + other, math.ceil(ascii_chars / 4) + other


def _estimate(pricing: Any, usage: Mapping[str, Any]) -> CreditEstimate | None:
    """The estimate proper; raises _Unusable (or a Decimal error) on absurd numbers.

    ``usage`` is an Anthropic usage object: ``input_tokens`` (not cached),
    ``cache_read_input_tokens``, ``cache_creation_input_tokens`` (split by
    ``cache_creation.ephemeral_5m/1h_input_tokens`` when given), ``output_tokens``, and, when
    the provider counted them, ``input_tokens_by_modality`` / ``output_tokens_by_modality``
    (non-text counts; the rest is text).
    """
    if not isinstance(pricing, dict):
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
            other, dict
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
