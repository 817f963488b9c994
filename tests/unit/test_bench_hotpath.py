"""bench/hotpath.py: the micro-benchmark runs the bridge's real path, and a benchmark run keeps
the hand-written "Bridge hot path" section of bench/results.md."""

from __future__ import annotations

from pathlib import Path

from bench import hotpath


def test_the_micro_benchmark_measures_every_message() -> None:
    # measure() raises when a message does not reach the batcher (refused, or lost on the way).
    assert hotpath.measure(12, 50, batch_id=True) > 0
    assert hotpath.measure_paho(1, 50, lean=True) > 0


def test_a_new_results_file_keeps_the_hot_path_section(tmp_path: Path) -> None:
    results = tmp_path / "results.md"
    results.write_text("# Benchmark results\n\nold\n\n## Bridge hot path\n\nfigures\n\n"
                       "## Later\n\nother\n", encoding="utf-8")
    new = hotpath.carry_over(results, "# Benchmark results\n\nnew\n")
    assert new == "# Benchmark results\n\nnew\n\n## Bridge hot path\n\nfigures\n"
    assert hotpath.carry_over(tmp_path / "none.md", "x\n") == "x\n"
