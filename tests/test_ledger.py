import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optmem.ledger import LEDGER_PREFIX, extract_exact_strings, format_ledger

POSITIVE = [
    # (text, expected exact string)
    ("the year 2024 was long", "2024"),
    ("about 1,234,567 rows", "1,234,567"),
    ("pi is 3.14159 roughly", "3.14159"),
    ("deployed on 2024-03-15 at noon", "2024-03-15"),
    ("call 555-123-4567 now", "555-123-4567"),
    ("call +1 (555) 123-4567 now", "+1 (555) 123-4567"),
    ("or +44 20 7946 0958 in London", "+44 20 7946 0958"),
    ("ticket AB-1234 is open", "AB-1234"),
    ("invoice INV2024x was paid", "INV2024x"),
    ("key sk-proj-9f3aB7 leaked", "sk-proj-9f3aB7"),
    ("id 550e8400-e29b-41d4-a716-446655440000 ok", "550e8400-e29b-41d4-a716-446655440000"),
    ("addr 0xDEADBEEF here", "0xDEADBEEF"),
    ("commit 3f2a9c1d4b was reverted", "3f2a9c1d4b"),
    ("see https://example.com/a_b?x=1234 for more", "https://example.com/a_b?x=1234"),
    ("at www.example.org/path.", "www.example.org/path"),
    ("mail john.doe42@example.co.uk today", "john.doe42@example.co.uk"),
    ("run os.path.join() first", "os.path.join()"),
    ("then call flush() twice", "flush()"),
    ("open report.pdf please", "report.pdf"),
    ("the `SELECT 1` query", "SELECT 1"),
    ("table pg_stat_subscription lags", "pg_stat_subscription"),
    ("table audit_log_2019 is big", "audit_log_2019"),
    ("in __init__ we", "__init__"),
    ("use getUserById here", "getUserById"),
    ("the H100 GPU", "H100"),
    ("negative -12345 works", "12345"),
]

NEGATIVE = [
    "Hello there, how are you today?",
    "It is well-known that e.g. cats sleep; i.e. a lot. The U.S. agrees.",
    "We met on March 3 at 10am, it took 10ms and 2nd place got 16GB.",
    "pi is about 3.14 and 99% of 100 people agree; x86 and MP3 are short.",
    "version v1.2.3 shipped",
    "don't stop; Mr. Smith's car",
    "```python",
    "_emphasis_ and __ and _",
    "我们明天开会，讨论数据库迁移的问题。",
]


@pytest.mark.parametrize("text,expected", POSITIVE)
def test_positive_cases(text, expected):
    assert expected in extract_exact_strings(text)


@pytest.mark.parametrize("text", NEGATIVE)
def test_negative_cases(text):
    assert extract_exact_strings(text) == []


def test_url_and_email_are_not_split_into_parts():
    got = extract_exact_strings("Go to https://api.example.com/v2/orders/AB-1234?id=98765 or mail ops.team@corp-1234.example.com")
    assert got == ["https://api.example.com/v2/orders/AB-1234?id=98765", "ops.team@corp-1234.example.com"]


def test_backtick_span_is_one_string():
    assert extract_exact_strings("run `pip install optmem==0.1.0` now") == ["pip install optmem==0.1.0"]


def test_order_of_first_appearance_and_deduplication():
    got = extract_exact_strings("AB-1234 then 2024 then AB-1234 again and 9999, then 2024")
    assert got == ["AB-1234", "2024", "9999"]


def test_chinese_text_with_embedded_ids():
    text = "订单号AB-1234已发货，金额12345元，联系ops@example.com，表名audit_log_2019。"
    assert extract_exact_strings(text) == ["AB-1234", "12345", "ops@example.com", "audit_log_2019"]


def test_url_trailing_punctuation_and_balanced_parens():
    assert extract_exact_strings("(see https://x.org/a).") == ["https://x.org/a"]
    assert extract_exact_strings("wiki https://en.wikipedia.org/wiki/Foo_(bar), ok") == [
        "https://en.wikipedia.org/wiki/Foo_(bar)"
    ]


def test_type_error_on_non_str():
    with pytest.raises(TypeError, match="text must be str"):
        extract_exact_strings(b"AB-1234")  # type: ignore[arg-type]


def test_format_ledger():
    assert format_ledger(["AB-1234", "2024", "os.path.join()"]) == "exact: AB-1234 | 2024 | os.path.join()"
    assert format_ledger([]) == ""
    assert format_ledger(["a\nb", "  "]) == "exact: a b"
    assert "\n" not in format_ledger(extract_exact_strings("`x\ty` and AB-1234\n2024"))


def test_long_pathological_input_scans_once():
    # Runs of characters that every alternative's look-behind rejects mid-run: a backtracking
    # (quadratic) scan would take minutes on this; the linear one returns at once.
    text = "a." * 50_000 + " " + "a" * 100_000 + " " + "1." * 50_000 + " x_" * 10_000
    got = extract_exact_strings(text)
    assert isinstance(got, list)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(list("aZx0139-_.:/@`()+, \n国字") + ["https://", "0x", "AB"]) | st.characters(),
                max_size=200).map("".join))
def test_every_string_is_a_substring_and_unique(text):
    got = extract_exact_strings(text)
    assert len(got) == len(set(got))
    for s in got:
        assert s and s in text
    line = format_ledger(got)
    assert "\n" not in line
    assert line == "" or line.startswith(LEDGER_PREFIX)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(st.lists(st.sampled_from(["AB-1234", "2024", "foo_bar", "x@y.io", "word", "の", " ", "\n", ".", "0xff", "`q`"]),
                max_size=40).map("".join))
def test_composed_text_substrings(text):
    for s in extract_exact_strings(text):
        assert s in text
