"""README sections of the data benchmarks: synthetic rendering, the DataLoader, MFCC cost."""

from __future__ import annotations

from .fmt import conditions, count, ms, times

# Peak RSS within this fraction across sets of different sizes counts as "the same".
SAME_MEMORY = 0.1


def synth(result: dict) -> str:
    lines = ["| set | render workers | clips | wall time | clips/s | CPU a clip |",
             "|---|---|---|---|---|---|"]
    for row in result["rows"]:
        lines.append(f"| {row['set']} | {row['workers']} | {count(row['clips'])} | "
                     f"{row['seconds']:.1f} s | {count(row['clips_per_s'])} | "
                     f"{ms(row['cpu_ms_per_clip'])} |")
    return "\n".join([*lines, "", conditions(result["meta"])])


def loader(result: dict) -> str:
    rows = result["rows"]
    lines = [f"One pass through a DataLoader ({result['workers']} workers, batch "
             f"{result['batch_size']}), each in a fresh process:", "",
             "| set | augmentation | clips | clips/s | peak RSS, main process / largest worker |",
             "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['set']} | {'on' if row['augment'] else 'off'} | "
                     f"{count(row['clips'])} | {count(row['clips_per_s'])} | "
                     f"{row['peak_rss_mb_main']:.0f} / {row['peak_rss_mb_worker']:.0f} MB |")
    sizes = {row["clips"] for row in rows}
    peaks = [row["peak_rss_mb_main"] for row in rows]
    if len(sizes) > 1:
        same = max(peaks) <= (1 + SAME_MEMORY) * min(peaks)
        lines += ["", f"Peak RSS of the main process over {' and '.join(map(count, sorted(sizes)))} "
                  f"clips: {min(peaks):.0f}-{max(peaks):.0f} MB, "
                  + ("so memory does not grow with the number of clips." if same else
                     "so memory grows with the number of clips.")]
    if "synthetic_render_seconds" in result:
        lines += ["", f"Rendering the synthetic set for this took {result['synthetic_render_seconds']:.0f} s."]
    lines += [f"\n{source}: {result[source]}" for source in ("fsdd", "synthetic") if source in result]
    return "\n".join([*lines, "", conditions(result["meta"])])


TORCHAUDIO, OURS_TORCH = "torchaudio MFCC (PyTorch)", "speechrnn MFCC (PyTorch)"


def frontend(result: dict) -> str:
    rows = result["results"]
    lines = ["MFCC of a 1 s clip, one thread, the four taking turns call by call (p50 per clip):",
             "", "| implementation | batch 1 | batch 64 | max error vs float64 torchaudio |",
             "|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {ms(row['p50_ms_per_clip_batch1'])} | "
                     f"{ms(row['p50_ms_per_clip_batch64'])} | {row['max_error_vs_float64']:.1e} |")
    by = {row["name"]: row["p50_ms_per_clip_batch1"] for row in rows}
    if by.get(OURS_TORCH, 0) > by.get(TORCHAUDIO, float("inf")):
        lines += ["", f"In PyTorch, speechrnn's frontend takes {times(by[OURS_TORCH] / by[TORCHAUDIO])} "
                  "torchaudio's time at batch 1: the DFT as a convolution costs more arithmetic "
                  "than an FFT, the price of a frontend that exports to ONNX."]
    return "\n".join([*lines, "", conditions(result["meta"])])
