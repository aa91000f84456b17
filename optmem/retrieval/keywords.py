"""The words of a query worth a keyword search: lower-cased, stop words dropped, each once."""

from __future__ import annotations

import re

STOPWORDS = frozenset("""a an and are as at be by can did do does for from had has have how i in is it its me my
of on or our that the their them they this to was we were what when where which who why will with you your""".split())


def keywords(query: str) -> list[str]:
    return list(dict.fromkeys(w for w in re.findall(r"\w+", query.lower()) if w not in STOPWORDS))
