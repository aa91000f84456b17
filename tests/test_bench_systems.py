"""The System protocol and its registry: every system is built by name and answers through the
same calls; the text systems give exactly what their pure policies give."""

import numpy as np
import pytest

from optmem.bench import baselines
from optmem.bench.common import memory_config
from optmem.bench.haystack import DialogTurn
from optmem.bench.protocol import Location, Transcript
from optmem.bench.systems import SYSTEMS, build
from optmem.bench.textview import turn_costs

TURNS = [DialogTurn("user" if i % 2 == 0 else "assistant", f"turn {i} says " + "word " * (5 + 3 * i)) for i in range(12)]
Q = "what did turn 3 say?"
NO_RETRIEVAL = memory_config({"retrieval": {"enabled": False}, "recent_turns": 2, "budget": 600})


class _OneHotEmbedder:
    """Turn i embeds as the i-th unit vector; the query as a mix of turns 3 and 5."""

    def encode(self, texts):
        out = np.zeros((len(texts), len(TURNS)), dtype=np.float32)
        for row, text in enumerate(texts):
            if text == Q:
                out[row, 3], out[row, 5] = 0.9, 0.1
            else:
                out[row, [t.text for t in TURNS].index(text)] = 1.0
        return out


def test_every_registered_name_builds_a_system_of_that_name():
    for name in SYSTEMS:
        system = build(name, NO_RETRIEVAL)
        assert system.name == name and callable(system.ingest)
        assert system.paged == name.startswith("optmem") and system.bounded == (name != "full")
    with pytest.raises(ValueError, match="unknown system 'nope'"):
        build("nope", NO_RETRIEVAL)


def test_optmem_variants_change_one_setting_each():
    base = memory_config({"archive": "optical", "reexpand": {"max_pages": 2}})
    assert build("optmem", base).config == base
    assert build("optmem-verbatim", base).config.archive == "verbatim"
    assert build("optmem-optical", memory_config()).config.archive == "optical"
    excerpt = build("optmem-excerpt", base).config
    assert excerpt.reexpand.unit == "excerpt" and excerpt.reexpand.max_pages == 2 and excerpt.archive == "optical"


@pytest.mark.parametrize("budget", [60, 300, 100_000])
def test_text_systems_through_the_protocol_equal_their_policies(budget):
    transcript = Transcript.of(TURNS)
    window = build("window", NO_RETRIEVAL).ingest(transcript).context(Q, budget)
    assert window == baselines.sliding_window(TURNS, Q, budget)
    full = build("full", NO_RETRIEVAL).ingest(transcript).context(Q, budget)
    assert full == baselines.full_text(TURNS, Q)
    retrieval = baselines.RetrievalSystem(_OneHotEmbedder(), recent=2).ingest(transcript)
    emb = np.eye(len(TURNS), dtype=np.float32)
    expected = baselines.text_retrieval(TURNS, Q, budget, recent=2, embeddings=emb,
                                        query_embedding=_OneHotEmbedder().encode([Q])[0])
    assert retrieval.context(Q, budget) == expected
    for i in range(len(TURNS)):
        assert window.locate(i) == (Location(text="turn") if i in window.turns else Location())
    assert retrieval.stats() == {} and retrieval.age_class(0) is None


def test_text_view_messages_carry_the_question_once():
    view = build("window", NO_RETRIEVAL).ingest(Transcript.of(TURNS)).context(Q, 300)
    messages = view.messages(Q)
    assert messages[-1]["content"] == view.text and view.text.count(Q) == 1


def test_transcript_costs_must_match_the_turns():
    assert Transcript.of(TURNS).costs == tuple(turn_costs(TURNS))
    with pytest.raises(ValueError, match="costs"):
        Transcript.of(TURNS, costs=[1, 2])


def test_location_where():
    assert Location("turn", "tiny").where == "turn"
    assert Location(None, "tiny").where == "page:tiny"
    assert Location().where is None


def test_optmem_through_the_protocol_keeps_the_budget_and_locates_turns():
    system = build("optmem-verbatim", NO_RETRIEVAL)
    held = system.ingest(Transcript.of(TURNS * 3))
    try:
        view = held.context(Q, 600)
        assert view.positions <= 600 and Q in view.text
        last = len(TURNS) * 3 - 1
        assert view.locate(last).text == "turn" and held.age_class(last) == "text"
        assert held.age_class(0) in ("large", "base", "small", "tiny", "evicted")
        stats = held.stats()
        assert stats["pages"] >= 1 and stats["ingest_s"] >= 0
        assert all(kind != "query" and text for kind, text in view.text_segments())
        assert view.messages(Q)[-1] == {"role": "user", "content": Q}
    finally:
        held.close()
