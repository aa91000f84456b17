"""optmem benchmarks: needle-in-a-haystack over conversations, LoCoMo, page fidelity per tier,
scaling, and schedule sweeps. Each compares optmem with plain-text alternatives in the same run
at the same position budget and scores deterministically (no LLM needed).

Entry points: ``optmem bench <name>`` (see :func:`optmem.bench.cli.register`) and the thin
scripts in ``benchmarks/``.
"""

BENCHMARKS = ("niah", "locomo", "fidelity", "scale", "schedule")
