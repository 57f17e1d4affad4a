"""`speechrnn listen`: a recording played in real time through the live loop gives the events
`speechrnn detect` finds in the file, each printed once its audio has played and soon after;
without sounddevice the microphone names the extra to install."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir

from helpers import REPO
from speechrnn import cli
from speechrnn.config import CONF_DIR
from benchmarks.detection_eval import assemble
from speechrnn.detect import EventTracker, Posteriors, Settings, detect
from speechrnn.export import export_model
from speechrnn.models import build_model

LABELS = ["yes", "no", "_silence_"]
LATENCY = 4.0  # seconds from an event's end to its line: clip + restart + smoothing + a slow machine


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """An untrained model exported plain and --streaming."""
    folder = tmp_path_factory.mktemp("listen")
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["recipe=smoke"])
    torch.manual_seed(0)
    model = build_model(cfg.data, cfg.features, cfg.model, LABELS)
    return {"plain": export_model(model, cfg.data, folder / "model.onnx"),
            "streaming": export_model(model, cfg.data, folder / "model.streaming.onnx", streaming=True)}


@pytest.fixture(scope="module")
def recording(fsdd_root, noise_root, tmp_path_factory):
    """Three spoken digits with noise or silence between them, about 8 s: it is played in real
    time, and needs events that end more than LATENCY before it does."""
    path = tmp_path_factory.mktemp("recording") / "words.wav"
    assemble(path, [(p, "yes") for p in sorted(fsdd_root.glob("1_*.wav"))[:3]],
             sorted(noise_root.glob("*.wav")), sample_rate=16000, seed=0, gap_seconds=(1.0, 2.0))
    return path


def firing_threshold(model, recording) -> float:
    """An untrained model's outputs hover near 1/3: the threshold at which it fires most often
    on the recording (several short events, not one long one)."""
    counts = {threshold: sum(1 for _ in detect(model, recording, Settings(threshold=threshold)))
              for threshold in np.arange(0.30, 0.45, 0.01).round(2)}
    return max(counts, key=counts.get)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["streaming", "plain"])
def test_a_file_played_in_real_time_prints_events_as_they_happen(models, recording, kind):
    model = models[kind]
    threshold = firing_threshold(model, recording)
    want = [e.to_dict() for e in detect(model, recording, Settings(threshold=threshold))]
    duration = sf.info(str(recording)).duration
    # Events that end well before the recording does: printed then, not at the end.
    assert len(want) >= 2 and want[0]["end"] < duration - LATENCY - 1, want
    process = subprocess.Popen(
        [sys.executable, "-m", "speechrnn", "listen", str(model), "--file", str(recording),
         "--threshold", str(threshold), "--format", "jsonl"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    arrivals, started = [], None
    for text in process.stdout:
        if text.startswith("speechrnn listen: "):  # printed as the playback starts
            started = time.monotonic()
        elif text.startswith("{"):
            arrivals.append((time.monotonic() - started, json.loads(text)))
    played_for = time.monotonic() - started
    assert process.wait(timeout=120) == 0
    assert [event for _, event in arrivals] == want
    for arrived, event in arrivals:
        # Not before its audio has played (real time), and not much after (as it happens).
        assert event["end"] - 0.05 <= arrived <= event["end"] + LATENCY, (arrived, event)
    assert played_for >= duration - 0.05  # the whole file took its own length to play


def test_the_microphone_without_sounddevice_names_the_extra(models, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if the extra were not installed
    assert cli.main(["listen", str(models["streaming"])]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("speechrnn listen: error: needs the listen extra (no module "
                       "'sounddevice'): pip install 'speechrnn[listen]'")


def test_a_missing_file_is_a_usage_error(models, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["listen", str(models["plain"]), "--file", str(tmp_path / "none.wav")])
    assert exit_info.value.code == 2 and "none.wav: no such file" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [("--threshold", "nan"), ("--smooth", "inf"),
                                           ("--restart", "-1"), ("--block", "nan")])
def test_a_setting_out_of_range_is_a_usage_error(models, recording, option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["listen", str(models["plain"]), "--file", str(recording), option, value])
    assert exit_info.value.code == 2 and option in capsys.readouterr().err


def steps(first: float, count: int, probs: list[float]) -> Posteriors:
    """``count`` steps 0.1 s apart from ``first``, each about the second of audio it starts."""
    starts = first + 0.1 * np.arange(count)
    return Posteriors(starts, starts + 1.0, np.tile(np.float32(probs), (count, 1)))


def test_the_tracker_gives_out_an_event_once_nothing_to_come_can_change_it():
    tracker = EventTracker(["yes", "_silence_"], threshold=0.5, release=0.5, smooth=1, merge=0.0)
    assert tracker.push(steps(0.0, 5, [0.9, 0.1])) == []  # "yes" at 0.0-0.4: about 0.4-1.0 s
    # A run that began before 1.0 s could still cut the event short, so it waits ...
    assert tracker.push(steps(0.5, 5, [0.1, 0.9])) == []
    # ... until a step starts at its end; not until the next word or the end of the stream.
    assert [e.to_dict() for e in tracker.push(steps(1.0, 1, [0.1, 0.9]))] == [
        {"label": "yes", "start": 0.4, "end": 1.0, "score": 0.9}]
    assert tracker.push(steps(1.1, 20, [0.1, 0.9])) == [] and tracker.close() == []
