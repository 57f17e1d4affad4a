"""Memory and speed of `speechrnn predict` / `speechrnn detect` on an hour-long recording,
and detect's precision/recall against the recording's known onsets."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from benchmarks.commands import checked, cli, run_measured
from benchmarks.detection_eval import assemble, score
from speechrnn.detect import Settings

THRESHOLDS = (0.5, 0.7, 0.9)  # detect --threshold values scored on the long recording
TOLERANCE_S = 0.5  # an event is a hit when it starts this close to its digit
GAP_SECONDS = (0.5, 2.5)  # between digits: silence or, every other time, noise at NOISE_DBFS
NOISE_DBFS = (-50.0, -35.0)


def long_recordings(fsdd: Path, noise: Path, folder: Path, hour_seconds: float) -> dict:
    """A one-minute and a ``hour_seconds`` recording of the FSDD test split's clips (random
    order, cycled: no model here trained on them), silence and noise; their paths, lengths
    and reference events."""
    files = sorted(p for p in fsdd.glob("*.wav") if int(p.stem.rsplit("_", 1)[1]) < 5)
    noises = sorted(noise.glob("*.wav"))
    rng = np.random.default_rng(0)
    per_clip = sum(GAP_SECONDS) / 2 + 0.45  # mean gap + mean FSDD clip, seconds
    recordings = {"files": files}
    for name, seconds in (("minute", 60.0), ("hour", hour_seconds)):
        picks = rng.permutation(np.resize(np.arange(len(files)), round(seconds / per_clip)))
        clips = [(files[i], files[i].name.split("_")[0]) for i in picks]
        path = folder / f"{name}.wav"
        start = time.perf_counter()
        reference = assemble(path, clips, noises, sample_rate=16000, gap_seconds=GAP_SECONDS,
                             noise_dbfs=NOISE_DBFS, seed=len(clips))
        recordings[name] = {"path": path, "reference": reference,
                            "seconds": sf.info(str(path)).duration,
                            "write_s": time.perf_counter() - start}
    return recordings


def bench_long(spotters: dict[str, tuple[Path, list[str]]], fsdd: Path, noise: Path,
               hour_seconds: float) -> dict:
    """Peak memory and time of predict and detect (default threads) on the recordings with
    the first of ``spotters`` (name -> (.onnx, extra detect arguments)), and every spotter's
    detect precision/recall on the long one at each of THRESHOLDS."""
    name, (model, _) = next(iter(spotters.items()))
    with tempfile.TemporaryDirectory() as tmp:
        recs = long_recordings(fsdd, noise, Path(tmp), hour_seconds)
        hour = recs["hour"]
        clip = sorted(fsdd.glob("*.wav"))[0]
        runs = {
            "predict, one 1 s clip": run_measured(cli("predict", model, clip)),
            "predict, the long recording": run_measured(cli("predict", model, hour["path"])),
            "detect, one minute": run_measured(cli("detect", model, recs["minute"]["path"],
                                                   "--format", "json")),
        }
        detections = {(other, threshold): run_measured(cli(
                          "detect", path, hour["path"], *extra, "--format", "json",
                          "--threshold", threshold))
                      for other, (path, extra) in spotters.items() for threshold in THRESHOLDS}
        runs["detect, the long recording"] = detections[name, Settings.threshold]
    for command, result in [*runs.items(), *detections.items()]:
        checked(str(command), result)
    return {
        "model": name, "threads": "one per core (the default)",
        "recording_seconds": hour["seconds"], "recording_mb": hour["seconds"] * 16000 * 2 / 1e6,
        "keywords": len(hour["reference"]), "write_s": hour["write_s"],
        "gap_seconds": GAP_SECONDS, "noise_dbfs": NOISE_DBFS, "test_clips": len(recs["files"]),
        "default_threshold": Settings.threshold, "tolerance_s": TOLERANCE_S,
        "peak_rss_mb": {command: r["peak_rss_mb"] for command, r in runs.items()},
        "wall_s": {command: r["wall_s"] for command, r in runs.items()},
        "detect": [{"model": other, "threshold": threshold,
                    "x_real_time": hour["seconds"] / result["wall_s"],
                    "score": score(json.loads(result["stdout"]), hour["reference"], TOLERANCE_S)}
                   for (other, threshold), result in detections.items()],
    }
