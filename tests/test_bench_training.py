"""benchmarks/bench_training.py: a run of some rows keeps the others, dated by their own run."""

from __future__ import annotations

from benchmarks.bench_training import PIPELINES, keep_rows


def test_rows_measured_again_replace_theirs_and_the_others_keep_their_own_meta():
    then, older = {"commit": "aaa"}, {"commit": "000"}
    order = list(PIPELINES)
    earlier = {"meta": then, "rows": [
        {"setup": order[0], "efficiency": 0.4},
        {"setup": order[2], "efficiency": 0.7, "meta": older},  # kept by a run before
        {"setup": "a setup no longer measured", "efficiency": 0.1}]}
    rows = keep_rows([{"setup": order[1], "efficiency": 0.8}], "setup", earlier, order)
    assert rows == [{"meta": then, "setup": order[0], "efficiency": 0.4},
                    {"setup": order[1], "efficiency": 0.8},
                    {"meta": older, "setup": order[2], "efficiency": 0.7}]
    again = keep_rows([{"setup": order[0], "efficiency": 0.5}], "setup", earlier, order)
    assert [row["efficiency"] for row in again] == [0.5, 0.7]
    assert keep_rows([{"setup": order[0]}], "setup", {}, order) == [{"setup": order[0]}]
