"""segment_count: GSM-7 (160 / 153) and UCS-2 (70 / 67) SMS segmentation."""

from __future__ import annotations

import pytest

from providers.sms import segment_count


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("", 0),
        ("a", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),  # concatenated: 153 per part
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("a" * 459, 3),
        ("a" * 460, 4),
        # The whole GSM basic table, accents and Greek included, stays 7-bit.
        ("@£$¥èéùìòÇ\nØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ!¤%&¡ÄÖÑÜ§¿äöñüà" * 3, 1),
    ],
)
def test_gsm7(text: str, segments: int) -> None:
    assert segment_count(text) == segments


def test_gsm7_extension_characters_cost_two_septets() -> None:
    assert segment_count("€" * 80) == 1  # 160 septets
    assert segment_count("€" * 81) == 2  # 162 septets
    assert segment_count("[" * 152) == 2  # 304 septets: 76 pairs per part
    assert segment_count("[" * 153) == 3  # 306 septets, but a pair never straddles parts
    assert segment_count("{}" * 77) == 3  # 308 septets


def test_gsm7_escape_pair_is_not_split_across_parts() -> None:
    # 306 septets would fit in two parts by division, but the "€" (ESC + e) cannot straddle
    # the boundary after 152 septets, so it opens part two and the last "a" needs a third.
    assert segment_count("a" * 152 + "€" + "a" * 152) == 3
    assert segment_count("a" * 153 + "€" + "a" * 151) == 2


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("你" * 70, 1),
        ("你" * 71, 2),  # concatenated: 67 per part
        ("你" * 134, 2),
        ("你" * 135, 3),
        ("a" * 69 + "ç", 1),  # one non-GSM character switches the whole text to UCS-2 ...
        ("a" * 70 + "ç", 2),  # ... so 71 characters are already two parts
        ("a" * 159 + "`", 3),  # backtick is not GSM: 160 UCS-2 units
    ],
)
def test_ucs2(text: str, segments: int) -> None:
    assert segment_count(text) == segments


def test_astral_characters_count_as_two_utf16_units_and_stay_whole() -> None:
    assert segment_count("😀" * 35) == 1  # 70 units
    assert segment_count("😀" * 36) == 2  # 72 units: 33 in part one, 3 in part two
    assert segment_count("😀" * 67) == 3  # 134 units, but 33 pairs per 67-unit part
