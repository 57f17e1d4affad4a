"""`speechrnn detect`: keyword events in long recordings of real FSDD digits between silence and
Speech Commands noise, scored against the known onsets; the blockwise reading, windowing and
event tracking it is made of.

The detector under test is a real model, trained here by ``speechrnn.training.fit`` with the
fsdd/kws recipe (the ten digits plus ``_silence_`` cut from the first half of each noise file),
exported by the trainer as a plain and a streaming model. The recordings are made of FSDD test
clips and noise that training never saw.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hydra import compose, initialize_config_dir

from speechrnn import audio, cli
from speechrnn.config import CONF_DIR
from speechrnn.data import SILENCE, UNKNOWN
from benchmarks.detection_eval import assemble, score, split_noise
from speechrnn.detect import (NOT_KEYWORDS, Event, EventTracker, Posteriors, Settings, detect,
                              sliding_windows)
from speechrnn.errors import SpeechRNNError
from speechrnn.export import export_model
from speechrnn.runtime import read_blocks
from speechrnn.training import fit
from helpers import BLOCK_TORCH, REPO, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: torch on one thread

DIGITS = [str(digit) for digit in range(10)]
RATE = 8000  # FSDD's own rate: the cheapest model that hears everything in it
# FSDD's test split (the model is neither fitted nor selected on it) makes the recordings.
RECORDING = range(5)


def fsdd_index(path: Path) -> int:
    return int(path.stem.rsplit("_", 1)[1])


@pytest.fixture(scope="module")
def noise_halves(noise_root, tmp_path_factory) -> tuple[Path, Path]:
    """The first half of every noise file (for training) and the second (for recordings)."""
    return split_noise(noise_root, tmp_path_factory.mktemp("noise"))


@pytest.fixture(scope="module")
def run_dir(fsdd_root, noise_halves, tmp_path_factory) -> Path:
    """A 1-layer GRU-128 trained for 4 short epochs (~20 s of CPU) on FSDD digits + _silence_,
    exported by the trainer (model.onnx and model.streaming.onnx)."""
    overrides = [
        "recipe=fsdd/kws", f"data.root={fsdd_root}", f"data.noise_dir={noise_halves[0]}",
        f"data.sample_rate={RATE}", "data.num_workers=0", "augment.speed_min=1.0",
        "augment.speed_max=1.0",
        # Mean pooling: with last pooling the GRU has not yet learnt, this early, to carry a
        # word across the half second of padding after it.
        "model.hidden_size=128", "model.num_layers=1", "model.pooling=mean",
        # Streamable: per-frame LayerNorm instead of per-utterance CMVN.
        "features.normalize=false", "model.input_norm=true",
        "optim.lr=0.01", "trainer.epochs=4", "trainer.limit_train_batches=30",
        "trainer.progress=false", "export.streaming=true",
    ]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    run = tmp_path_factory.mktemp("run")
    summary = fit(cfg, run)
    assert summary["test_accuracy"] > 0.6, summary  # it learned the digits
    return run


@pytest.fixture(scope="module")
def recording(fsdd_root, noise_halves, tmp_path_factory) -> tuple[Path, list[dict]]:
    """About two minutes of 60 unseen FSDD digits at 16 kHz, silence and noise between them."""
    files = sorted(p for p in fsdd_root.glob("*.wav") if fsdd_index(p) in RECORDING)
    picks = np.random.default_rng(0).choice(len(files), 60, replace=False)
    path = tmp_path_factory.mktemp("recording") / "long.wav"
    reference = assemble(path, [(files[i], files[i].name[0]) for i in picks],
                         sorted(noise_halves[1].glob("*.wav")), sample_rate=16000, seed=0)
    return path, reference


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["detect", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def check_events(rows: list[dict], duration: float, threshold: float) -> None:
    """Some events, and each a well-formed keyword event inside the recording that reached the
    threshold; in order and not overlapping."""
    assert rows, "no events: nothing to check"
    for row in rows:
        assert set(row) == {"label", "start", "end", "score"}
        assert row["label"] in DIGITS
        assert 0.0 <= row["start"] < row["end"] <= duration + 1e-6
        assert threshold <= row["score"] <= 1.0
    for before, after in zip(rows, rows[1:]):
        assert before["end"] <= after["start"]


# --------------------------------------------------------------------------- end to end

@pytest.mark.slow
def test_detects_the_spoken_digits_in_a_long_recording(run_dir, recording, capsys):
    path, reference = recording
    # Four short epochs leave the model less sure of itself than a trained one (the default
    # threshold is for those): at 0.7 it would find about two thirds of the digits.
    code, out, err = run_cli(capsys, run_dir / "model.onnx", path, "--format", "json",
                             "--threshold", "0.5")
    assert code == 0 and "Traceback" not in err
    rows = json.loads(out)
    check_events(rows, sf.info(str(path)).duration, 0.5)
    result = score(rows, reference, tolerance=0.5)
    assert result["precision"] >= 0.7 and result["recall"] >= 0.7, result

    # The table lists the same events.
    code, out, _ = run_cli(capsys, run_dir / "model.onnx", path, "--threshold", "0.5")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["label", "start", "end", "score"]
    assert [line.split()[0] for line in lines[1:]] == [row["label"] for row in rows]
    assert [float(line.split()[1]) for line in lines[1:]] == [row["start"] for row in rows]


@pytest.mark.slow
def test_the_streaming_export_detects_them_too(run_dir, recording):
    path, reference = recording
    model = run_dir / "model.streaming.onnx"
    duration = sf.info(str(path)).duration
    results = {}
    for restart in (0.0, 1.0, None):  # never, every second, the default for a clip model
        events = [e.to_dict() for e in detect(model, path, Settings(restart=restart), threads=1)]
        check_events(events, duration, Settings.threshold)
        results[restart] = score(events, reference, tolerance=0.5)
    default = results[None]
    assert default["precision"] >= 0.6 and default["recall"] >= 0.5, results
    # One state for the whole recording drifts: restarting it finds more of the digits, and
    # more the more often it restarts (every CLIP_RESTART seconds by default).
    assert default["hits"] > results[1.0]["hits"] > 2 * results[0.0]["hits"], results


@pytest.mark.slow
def test_reading_in_blocks_does_not_change_the_events(run_dir, recording):
    path, _ = recording
    model = run_dir / "model.onnx"
    want = list(detect(model, path, Settings(block=60.0), threads=1))
    got = list(detect(model, path, Settings(block=0.37), threads=1))
    assert len(want) >= 30  # of the 60 digits, at the default threshold
    assert [e.label for e in got] == [e.label for e in want]
    np.testing.assert_allclose([(e.start, e.end, e.score) for e in got],
                               [(e.start, e.end, e.score) for e in want], atol=1e-3)


# --------------------------------------------------------------------------- errors

@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory) -> Path:
    """Untrained tiny models, plain and streaming, for what needs no trained one."""
    folder = tmp_path_factory.mktemp("tiny")
    model, cfg = tiny_model("features.normalize=false", labels=["yes", "no", SILENCE])
    export_model(model, cfg.data, folder / "model.onnx")
    export_model(model, cfg.data, folder / "model.streaming.onnx", streaming=True)
    return folder


def test_bad_inputs_are_clear_errors(tiny_models, fsdd_root, tmp_path, capsys):
    path = sorted(fsdd_root.glob("*.wav"))[0]
    model = tiny_models / "model.onnx"
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    not_a_model = tmp_path / "model.onnx"
    not_a_model.write_text("nope")
    for args, needle in [((model, tmp_path / "missing.wav"), "missing.wav: file not found"),
                         ((model, corrupt), "corrupt.wav: not readable audio"),
                         ((not_a_model, path), "not a loadable ONNX model"),
                         ((tmp_path / "none.onnx", path), "model file not found")]:
        code, out, err = run_cli(capsys, *args)
        assert code == 1 and out == "" and "Traceback" not in err
        assert err.startswith("speechrnn detect: error: ") and needle in err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["detect", str(model), str(path), "--threshold", "1.5"])
    assert exit_info.value.code == 2
    assert "--threshold must be in (0, 1]" in capsys.readouterr().err


def test_a_recording_shorter_than_a_frame_is_no_error(tiny_models, tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, np.full(100, 0.01, np.float32), 8000)
    found = {}
    for model in ("model.onnx", "model.streaming.onnx"):
        for restart in (0.0, 1.0):
            # The untrained model's top probability of three is about 0.37: a low threshold, so
            # that there are events to check.
            events = list(detect(tiny_models / model, short, Settings(restart=restart, threshold=0.3),
                                 threads=1))
            assert len(events) <= 1, events  # one padded window: at most one event
            for event in events:
                assert event.label in ("yes", "no") and event.score >= 0.3
                assert 0.0 <= event.start < event.end <= 100 / 8000
            found[model, restart] = len(events)
    # The plain model scores its one padded window whatever the restart setting.
    assert found["model.onnx", 0.0] == found["model.onnx", 1.0] == 1, found


@pytest.mark.slow
def test_detect_needs_no_torch(tiny_models, fsdd_root, tmp_path):
    recording = tmp_path / "recording.wav"
    assemble(recording, [(p, "yes") for p in sorted(fsdd_root.glob("1_*.wav"))[:6]], [])
    models = [str(tiny_models / name) for name in ("model.onnx", "model.streaming.onnx")]
    script = BLOCK_TORCH + textwrap.dedent(f"""
        import io, json, contextlib
        from speechrnn import cli
        rows = []
        for model in {models!r}:
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert cli.main(["detect", model, {str(recording)!r}, "--format", "json",
                                 "--threshold", "0.3"]) == 0
            rows.append(json.loads(out.getvalue()))
        assert not [m for m in sys.modules if m.split(".")[0] == "torch"]
        print(json.dumps(rows))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, timeout=120)
    assert result.returncode == 0, result.stderr
    # An untrained model over three labels: a low threshold, so that there are events.
    want = [[e.to_dict() for e in detect(model, recording, Settings(threshold=0.3))]
            for model in models]
    assert all(want) and json.loads(result.stdout) == want


# --------------------------------------------------------------------------- the parts

def test_split_noise_halves_every_file(noise_root, noise_halves):
    files = sorted(noise_root.glob("*.wav"))
    assert len(files) == 6  # Speech Commands' _background_noise_
    assert sorted(p.name for p in noise_halves[0].glob("*.wav")) == [p.name for p in files]
    for path in files:
        whole, rate = sf.read(path, dtype="float32")
        first, second = (sf.read(half / path.name, dtype="float32") for half in noise_halves)
        assert first[1] == second[1] == rate
        np.testing.assert_allclose(np.concatenate([first[0], second[0]]), whole, atol=1 / 32768)
        assert abs(len(first[0]) - len(second[0])) <= 1


def test_blocks_are_the_whole_file_resampled(fsdd_root, tmp_path):
    """Three real recordings back to back, read in blocks of 0.1 s: at the file's own rate the
    same samples, resampled the same signal as a one-shot resample."""
    wave = np.concatenate([audio.load(p) for p in sorted(fsdd_root.glob("4_jackson_1*.wav"))[:3]])
    path = tmp_path / "three.wav"
    sf.write(path, wave, 8000, subtype="FLOAT")
    blocks = list(read_blocks(path, 8000, block_seconds=0.1))
    assert len(blocks) == -(-len(wave) // 800) > 10
    assert all(len(b) == 800 for b in blocks[:-1])
    np.testing.assert_array_equal(np.concatenate(blocks), wave)
    joined = np.concatenate(list(read_blocks(path, 16000, block_seconds=0.1)))
    whole = audio.resample(wave, 8000, 16000)
    assert abs(len(joined) - len(whole)) <= 1
    n = min(len(joined), len(whole))
    assert np.abs(joined[:n] - whole[:n]).max() < 1e-3


@pytest.mark.parametrize("size,hop", [(10, 3), (8, 8), (5, 7)])
def test_sliding_windows_over_blocks_are_the_windows_of_the_whole(size, hop):
    rng = np.random.default_rng(size)
    stream = rng.standard_normal(103).astype(np.float32)
    cuts = np.sort(rng.choice(np.arange(1, 103), 12, replace=False))
    got = [(first, windows.copy()) for first, windows in
           sliding_windows(np.split(stream, cuts), size, hop)]
    starts = np.concatenate([first + hop * np.arange(len(w)) for first, w in got])
    np.testing.assert_array_equal(starts, np.arange(0, 103, hop))  # every start before the end
    padded = np.pad(stream, (0, size))
    np.testing.assert_array_equal(np.concatenate([w for _, w in got]),
                                  np.stack([padded[s : s + size] for s in starts]))


def posteriors(labels, rows: dict[int, tuple[str, float]], steps: int, span: float = 1.0,
               step: float = 0.1) -> Posteriors:
    """Synthetic posteriors: at step i, label rows[i][0] has rows[i][1], _silence_ the rest."""
    probs = np.zeros((steps, len(labels)), np.float32)
    probs[:, labels.index(SILENCE)] = 1.0
    for i, (label, p) in rows.items():
        probs[i, labels.index(label)] = p
        probs[i, labels.index(SILENCE)] = 1.0 - p
    starts = step * np.arange(steps)
    return Posteriors(starts, starts + span, probs)


def track(labels, post: Posteriors, chunks: int = 1, **settings) -> list[Event]:
    tracker = EventTracker(labels, **{"threshold": 0.5, "release": 0.25, "smooth": 1,
                                      "merge": 0.3, **settings})
    events = []
    for part in np.array_split(np.arange(len(post.probs)), chunks):
        events += tracker.push(Posteriors(post.starts[part], post.ends[part], post.probs[part]))
    return events + tracker.close()


def test_event_tracking():
    labels = ["yes", "no", SILENCE, UNKNOWN]
    assert set(NOT_KEYWORDS) == {SILENCE, UNKNOWN}
    rows = {**{i: ("yes", 0.9) for i in range(3, 8)},
            8: ("yes", 0.3), 9: ("yes", 0.1),  # above release: one run; then a dip
            10: ("yes", 0.8), 11: ("yes", 0.8),  # back within merge: the same event
            20: ("no", 0.6), 21: ("no", 0.7),
            30: ("yes", 0.4)}  # below threshold
    post = posteriors(labels, rows, 40)
    for chunks in (1, 7, 40):  # fed in any pieces, the same events
        events = track(labels, post, chunks)
        assert [e.label for e in events] == ["yes", "no"]
        yes, no = events
        # Spans [0.1 i, 0.1 i + 1]: the intersection of steps 3..11 is [1.1, 1.3].
        assert (yes.start, yes.end, yes.score) == pytest.approx((1.1, 1.3, 0.9))
        assert (no.start, no.end, no.score) == pytest.approx((2.1, 3.0, 0.7))

    # Without merging, the dip splits "yes" in two events that do not overlap.
    first, second = track(labels, post, merge=0.0)[:2]
    assert first.label == second.label == "yes" and first.end <= second.start
    # Smoothing over 5 steps takes the two-step "no" below the threshold.
    assert [e.label for e in track(labels, post, smooth=5)] == ["yes"]
    # _silence_ and _unknown_ are never events, however sure the model is.
    post = posteriors(labels, {i: (UNKNOWN, 1.0) for i in range(5, 15)}, 20)
    assert track(labels, post) == []


def test_a_model_without_keywords_is_refused():
    with pytest.raises(SpeechRNNError, match="no keyword"):
        EventTracker([SILENCE, UNKNOWN], 0.5, 0.25, 1, 0.3)
