"""The turn header is written and read by one module."""

from hypothesis import given, strategies as st

from renderers import find_headers, format_header, format_timestamp, normalize_separators


def test_header_round_trip():
    text = format_header("user", 12, 1_700_000_000) + "\nhello\n\n" + format_header("assistant", 13, continued=True) + "\nhi"
    found = list(find_headers(text))
    assert [(h.role, h.number) for h in found] == [("user", 12), ("assistant", 13)]
    assert text[found[1].start:].startswith("assistant · #13 (continued)")


def test_ocr_separators_are_respaced():
    assert normalize_separators("user·#12·2024-05-01 09:30 UTC") == "user · #12 · 2024-05-01 09:30 UTC"
    assert [h.number for h in find_headers("tool·#7\nx")] == [7]


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-10**30, max_value=10**30)))
def test_timestamps_of_any_size_format(ts):
    assert isinstance(format_timestamp(ts), str)
