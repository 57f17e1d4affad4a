"""benchmarks/bench_stream.py: a validation run of one lever keeps the rows of the others; a
model that hits nothing is measured, not a crash."""

from __future__ import annotations

import json

from benchmarks import bench_stream, meta


def test_validation_keeps_the_rows_of_other_overrides(tmp_path, monkeypatch):
    monkeypatch.setattr(meta, "RESULTS", tmp_path)
    assert bench_stream.kept_rows([{"kind": "stream", "overrides": []}], quick=False) == []

    def row(kind: str, overrides: list[str], commit: str) -> dict:
        return {"kind": kind, "overrides": overrides, "smooth": 0.02, "commit": commit}

    earlier = [row("stream", [], "aaa"), row("stream", ["stream.window_seconds=0.15"], "aaa"),
               row("windows", [], "aaa")]
    (tmp_path / "stream_validation.json").write_text(json.dumps({"rows": earlier}))
    measured = [row("stream", ["stream.window_seconds=0.15"], "bbb"), row("windows", [], "bbb")]
    assert bench_stream.kept_rows(measured, quick=False) == [earlier[0]]


def test_latency_summary_without_a_hit_is_none_not_a_crash():
    assert bench_stream.latency_summary([]) == {"median": None, "p90": None, "hits": 0}
    summary = bench_stream.latency_summary([0.1, 0.3, 0.2])
    assert summary["median"] == 0.2 and summary["hits"] == 3
    assert 0.28 <= summary["p90"] <= 0.3
