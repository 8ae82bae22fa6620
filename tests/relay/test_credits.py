"""The credits estimate against hand-computed Decimals, for every pricing form."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from aitoearn_mcp.relay._credits import estimate_credits, plain_decimal

SONNET = {"tiers": [{"input": {"text": "0.06", "image": "0.06", "cacheRead": "0.006", "cacheWrite5m": "0.075",
                               "cacheWrite1h": "0.12"}, "output": {"text": "0.3"}}]}  # fmt: skip
GEMINI = {"tiers": [{"maxInputTokens": 200000, "input": {"text": "0.1", "image": "0.2", "audio": "0.3",
                                                         "video": "0.25"}, "output": {"text": "0.6"}},
                    {"input": {"text": "0.2"}, "output": {"text": "0.9"}}]}  # fmt: skip


def test_flat_price_whatever_the_tokens() -> None:
    estimate = estimate_credits({"price": "1.5", "originPrice": "3"}, {"input_tokens": 10**6, "output_tokens": 5})
    assert estimate is not None and estimate.amount == Decimal("1.5")
    assert estimate.as_dict() == {"estimate": "1.5", "basis": "a flat price per call, from list_models pricing"}


def test_one_tier_text_only() -> None:
    estimate = estimate_credits(SONNET, {"input_tokens": 21, "output_tokens": 17})
    # 21/1000 × 0.06 + 17/1000 × 0.3 = 0.00126 + 0.0051
    assert estimate is not None and estimate.amount == Decimal("0.00636")
    assert estimate.as_dict()["estimate"] == "0.00636"
    assert estimate.basis == "21 input × 0.06 + 17 output × 0.3 per 1K tokens, from list_models pricing"


def test_two_tiers_pick_by_input_tokens_at_the_boundary() -> None:
    at_limit = estimate_credits(GEMINI, {"input_tokens": 200000, "output_tokens": 1000})
    over = estimate_credits(GEMINI, {"input_tokens": 200001, "output_tokens": 1000})
    assert at_limit is not None and at_limit.amount == Decimal("200000") / 1000 * Decimal("0.1") + Decimal("0.6")
    assert at_limit.amount == Decimal("20.6")
    assert over is not None and over.amount == Decimal("200001") * Decimal("0.2") / 1000 + Decimal("0.9")
    assert "tier 2 of 2" in over.basis and "tier 1 of 2" in at_limit.basis
    # cache tokens count towards the tier's input size
    cached = estimate_credits(GEMINI, {"input_tokens": 1, "cache_read_input_tokens": 200000, "output_tokens": 0})
    assert cached is not None and "tier 2 of 2" in cached.basis


def test_per_modality_rates() -> None:
    usage = {"input_tokens": 3000, "output_tokens": 500,
             "input_tokens_by_modality": {"image": 1000, "audio": 400, "video": 100}}  # fmt: skip
    estimate = estimate_credits(GEMINI, usage)
    expected = (Decimal(1500) * Decimal("0.1") + Decimal(1000) * Decimal("0.2") + Decimal(400) * Decimal("0.3")
                + Decimal(100) * Decimal("0.25") + Decimal(500) * Decimal("0.6")) / 1000  # fmt: skip
    assert estimate is not None and estimate.amount == expected == Decimal("0.795")
    # a modality without its own rate is priced as text
    no_rate = estimate_credits(
        SONNET, {"input_tokens": 1000, "output_tokens": 0, "input_tokens_by_modality": {"audio": 1000}}
    )
    assert no_rate is not None and no_rate.amount == Decimal("0.06")


def test_cache_reads_and_writes_at_their_own_rates() -> None:
    usage = {"input_tokens": 100, "output_tokens": 200, "cache_read_input_tokens": 5000,
             "cache_creation_input_tokens": 3000,
             "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000}}  # fmt: skip
    estimate = estimate_credits(SONNET, usage)
    expected = (Decimal(100) * Decimal("0.06") + Decimal(5000) * Decimal("0.006") + Decimal(1000) * Decimal("0.075")
                + Decimal(2000) * Decimal("0.12") + Decimal(200) * Decimal("0.3")) / 1000  # fmt: skip
    assert estimate is not None and estimate.amount == expected == Decimal("0.411")
    assert "5000 cache read × 0.006" in estimate.basis and "2000 cache write 1h × 0.12" in estimate.basis
    # without the 5m/1h split every write is a 5-minute one
    plain = estimate_credits(SONNET, {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 1000})
    assert plain is not None and plain.amount == Decimal("0.075")


def test_no_usable_pricing_gives_no_estimate() -> None:
    assert estimate_credits(None, {"input_tokens": 1}) is None
    assert estimate_credits({"tiers": []}, {"input_tokens": 1}) is None
    assert estimate_credits({"price": "free"}, {}) is None
    assert estimate_credits({"tiers": [{"input": {"text": "x"}, "output": {"text": "1"}}]}, {}) is None


@given(st.decimals(allow_nan=False, allow_infinity=False, places=8, min_value=-(10**6), max_value=10**6))
def test_plain_decimal_round_trips_without_exponent(value: Decimal) -> None:
    text = plain_decimal(value)
    assert "E" not in text and "e" not in text
    assert Decimal(text) == value
    assert not (text.endswith("0") and "." in text)
