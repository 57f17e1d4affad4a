"""Sections of bench_training --pipeline (does the data keep up?) and --ddp (two processes)."""

from __future__ import annotations

from .fmt import conditions, count, earlier_rows, mb, pct

TARGET_EFFICIENCY = 0.9  # issue 15: the real data path at >= 90 % of in-memory batches


def efficiency(result: dict) -> str:
    lines = [f"Training clips/s through the real data path (DataLoader workers, decode cache, "
             f"augmentation) over clips/s of the same model stepping on batches already in "
             f"memory (where a setup warps speed and VTLP in the model, both turns warp), in "
             f"turns of {result['rows'][0]['batches_per_round']} batches "
             f"(median of {result['rows'][0]['rounds']} turns each); the synthetic corpus is "
             f"35 words x {count(result['clips_per_word'])} clips from `speechrnn synth`:", "",
             "| setup | training clips | efficiency | real / in memory, clips/s | epoch, cold / warm "
             "decode cache | setup, cold / warm | peak RSS, main / worker | decode cache |",
             "|---|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        real = sorted(row["real_clips_per_s"])[len(row["real_clips_per_s"]) // 2]
        memory = sorted(row["memory_clips_per_s"])[len(row["memory_clips_per_s"]) // 2]
        met = "met" if row["efficiency"] >= TARGET_EFFICIENCY else "missed"
        lines.append(
            f"| {row['setup']} | {count(row['train_clips'])} | **{row['efficiency']:.2f}** "
            f"(target {TARGET_EFFICIENCY}: {met}) | {count(real)} / {count(memory)} | "
            f"{row['epoch_seconds']['cold_cache']:.0f} s / {row['epoch_seconds']['warm_cache']:.0f} s | "
            f"{row['setup_seconds']['cold_cache']:.1f} s / {row['setup_seconds']['warm_cache']:.1f} s | "
            f"{mb(row['peak_rss_mb']['main'])} / {mb(row['peak_rss_mb']['largest_worker'])} | "
            f"{mb(row['decode_cache_mb'])} |")
    lines += ["", "Where a clip's time goes, one stage at a time in the benchmark's process "
              "(ms a clip):", ""]
    for row in result["rows"]:
        stages = ", ".join(f"{name} {value:.2f}" for name, value in row["ms_a_clip"].items())
        lines.append(f"- {row['setup']}: {stages}")
    lines += ["", "Reproduce with `python -m benchmarks.bench_training --pipeline --corpus DIR` "
              "(it prints the `speechrnn synth` line that renders DIR)."]
    return "\n".join([*lines, "", conditions(result["meta"]) + earlier_rows(result["rows"], "setup")])


def ddp(result: dict) -> str:
    rows = {row["processes"]: row for row in result["rows"]}
    one, two = rows[1], rows[2]
    scaling = two["train_clips_per_s"]["mean"] / one["train_clips_per_s"]["mean"]
    lines = [f"`{result['recipe']}` with a global batch of {result['global_batch']}, "
             f"{len(one['seeds'])} seed{'s' if len(one['seeds']) > 1 else ''} each "
             "(mean ± std):", "",
             "| processes | batch a process | test accuracy | training clips/s | wall time |",
             "|---|---|---|---|---|"]
    for row in (one, two):
        lines.append(
            f"| {row['processes']} | {row['batch_per_process']} | "
            f"{pct(row['test_accuracy']['mean'], 2)} ± {100 * row['test_accuracy']['std']:.2f} | "
            f"{count(row['train_clips_per_s']['mean'])} ± {count(row['train_clips_per_s']['std'])} | "
            f"{row['wall_seconds']['mean']:.0f} s |")
    lines += ["", f"Two processes train at {scaling:.2f}x the clips/s of one on this machine.",
              "", "Reproduce with `python -m benchmarks.bench_training --ddp --seeds "
              + " ".join(str(run["seed"]) for run in one["seeds"]) + "`."]
    return "\n".join([*lines, "", conditions(result["meta"])])
