"""Training for a stream that never restarts: the long sequences built from real FSDD clips and
real noise (speechrnn/data/stream.py), the max-pooling loss (speechrnn/objectives.py), the
per-frame path it trains against the streaming ONNX export, the metadata and card that say so,
and `speechrnn detect` running such a model with one state and giving each event out early."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from omegaconf import OmegaConf

from benchmarks.detection_eval import assemble
from speechrnn import audio, card, cli
from speechrnn.config import StreamConfig, compose_config, plain
from speechrnn.data import SILENCE, UNKNOWN, build_splits, build_stream_datasets
from speechrnn.data.stream import IGNORE, NOTHING
from speechrnn.detect import (CLIP_SMOOTH, STREAM_SMOOTH, EventTracker, Posteriors, Settings,
                              detect)
from speechrnn.errors import UsageError
from speechrnn.export import export_model
from speechrnn.runtime import StreamingRecognizer, open_model
from speechrnn.objectives import StreamObjective, max_pooling_loss, run_means
from speechrnn.training import fit
from helpers import tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")

DIGITS = [str(d) for d in range(10)]


def stream_config(fsdd_root, noise_root, *overrides: str):
    return compose_config(["recipe=fsdd/kws_stream", f"data.root={fsdd_root}",
                           f"data.noise_dir={noise_root}", *overrides])


@pytest.fixture(scope="module")
def sequences(fsdd_root, noise_root):
    # Windows over the whole word (the recipe's open near its end): where each word is.
    cfg = OmegaConf.to_object(stream_config(fsdd_root, noise_root, "stream.window_seconds=null"))
    splits = build_splits(cfg.data)
    make = lambda: build_stream_datasets(cfg.data, cfg.augment, cfg.stream, splits,  # noqa: E731
                                         cfg.features.hop_length, seed=0)
    return cfg, splits.labels, make


def test_sequences_put_the_words_where_their_windows_say(sequences):
    cfg, labels, make = sequences
    datasets = make()
    val = datasets["val"]  # clips as recorded (no augmentation), the bed of noise on top
    hop, rate = cfg.features.hop_length, cfg.data.sample_rate
    inside, outside = [], []
    for i in range(8):
        wave, frames, windows = val[i]
        assert wave.shape == (round(cfg.stream.seconds * rate),)
        assert frames.shape == (len(wave) // hop + 1,)
        kept = windows[windows[:, 2] >= 0].numpy()
        assert len(kept) >= 3  # most of the 5 clips are digits (a few are _silence_)
        assert set(frames.unique().tolist()) <= {IGNORE, labels.index(SILENCE)}  # no _unknown_ in FSDD
        ignored = np.zeros(len(frames), bool)
        for first, last, label in kept:
            assert 0 <= first < last < len(frames) and labels[label] in DIGITS
            assert (frames[first : last + 1] == IGNORE).all()
            ignored[first : last + 1] = True
            # The word is at the start of its window (the rest is the allowed delay).
            inside.append(float(wave[first * hop : first * hop + rate // 4].square().mean()))
        assert (frames[~ignored] == labels.index(SILENCE)).all()  # every other frame: background
        for k in range(0, len(wave) - rate // 4, rate // 4):
            if not ignored[k // hop : (k + rate // 4) // hop + 1].any():
                outside.append(float(wave[k : k + rate // 4].square().mean()))
    # Background holds _silence_ clips (noise recordings at their own level) as well as the gaps.
    assert outside and np.median(inside) > 5 * np.median(outside), (np.median(inside), np.median(outside))

    # Reproducible from (seed, epoch, index), whoever builds the dataset; another epoch differs.
    again = make()["train"]
    first = datasets["train"][3]
    assert all(torch.equal(a, b) for a, b in zip(first, again[3]))
    again.set_epoch(1)
    assert not torch.equal(first[0], again[3][0])


def test_window_seconds_opens_each_window_that_long_before_its_word_ends(fsdd_root, noise_root):
    cfg = OmegaConf.to_object(stream_config(fsdd_root, noise_root, "stream.window_seconds=0.1"))
    splits = build_splits(cfg.data)
    val = build_stream_datasets(cfg.data, cfg.augment, cfg.stream, splits,
                                cfg.features.hop_length, seed=0)["val"]
    whole = OmegaConf.to_object(stream_config(fsdd_root, noise_root, "stream.window_seconds=null"))
    as_before = build_stream_datasets(whole.data, whole.augment, whole.stream, splits,
                                      whole.features.hop_length, seed=0)["val"]
    hop, rate = cfg.features.hop_length, cfg.data.sample_rate
    # A window now spans 0.1 s of its word and the delay after it (less where the next clip
    # cut it short), instead of the whole word.
    longest = (cfg.stream.delay_seconds + 0.1) * rate / hop
    spans, narrowed = [], 0
    for i in range(8):
        wave, frames, windows = val[i]
        same_wave, _, word_windows = as_before[i]
        assert torch.equal(wave, same_wave)  # the same sequence, only its targets differ
        for (opens, last, label), (first, same_last, same_label) in zip(windows.tolist(),
                                                                       word_windows.tolist()):
            assert (last, label) == (same_last, same_label)
            if label < 0:
                continue
            assert first <= opens <= last and last - opens <= longest + 1
            # The word's frames before its window: no keyword; the window: the max-pooling loss.
            assert (frames[first:opens] == NOTHING).all()
            assert (frames[opens : last + 1] == IGNORE).all()
            spans.append(last - opens)
            narrowed += opens > first
    assert narrowed >= 3 and max(spans) == pytest.approx(longest, abs=1)


def test_run_means_average_the_frames_of_each_run_inside_its_window():
    values = torch.tensor([[9.0, 1.0, 2.0, 4.0, 8.0, 9.0]])
    inside = torch.tensor([[False, True, True, True, True, False]])
    means = run_means(values, inside, 2)[0, 1:5].tolist()
    assert means == [1.5, 3.0, 6.0, 8.0]  # the last run is cut short where the window ends


def test_peak_seconds_is_the_run_of_frames_the_loss_averages():
    labels = ["3", "7", SILENCE]
    assert StreamObjective(labels, StreamConfig(), 100.0).peak == 1
    assert StreamObjective(labels, StreamConfig(peak_seconds=0.05), 100.0).peak == 5
    assert StreamObjective(labels, StreamConfig(peak_seconds=0.05), 8000 / 128).peak == 3


def test_max_pooling_loss_scores_the_best_frame_of_each_window():
    silence = 2
    frames = torch.tensor([[silence, IGNORE, IGNORE, IGNORE, silence, silence]])
    windows = torch.tensor([[[1, 3, 0], [-1, -1, -1]]])  # label 0 from frame 1 to 3; padding
    logits = torch.zeros(1, 6, 3)
    logits[0, 1:4, 0] = torch.tensor([0.5, 2.0, 1.0])  # label 0 is likeliest at frame 2
    logits[0, 1:4, 1] = torch.tensor([1.5, 0.0, 0.3])  # the other keyword, at frame 1 above all
    logits[0, [0, 4, 5], silence] = torch.tensor([1.0, 3.0, -1.0])
    loss, label, predicted = max_pooling_loss(logits, frames, windows, nothing=[silence])
    log_probs = torch.log_softmax(logits, -1)[0]
    background = -log_probs[[0, 4, 5], silence].mean()
    best = -log_probs[2, 0]
    # The window's frames may say label 0 or nothing, never label 1.
    allowed = -torch.log(log_probs[1:4, [0, silence]].exp().sum(-1)).mean()
    assert loss.item() == pytest.approx(float(background + best + allowed), abs=1e-6)
    assert label.tolist() == [0] and predicted.tolist() == [0]
    # Frames marked NOTHING (a keyword before its window) count as background, towards any
    # class that is no keyword.
    other = 1
    unnamed = frames.clone()
    unnamed[0, 5] = NOTHING
    loss_unnamed = max_pooling_loss(logits, unnamed, windows, nothing=[silence, other])[0]
    allowed_both = -torch.log(log_probs[1:4, [0, silence, other]].exp().sum(-1)).mean()
    nothing = -torch.log(log_probs[5, [silence, other]].exp().sum())
    with_unnamed = (-log_probs[[0, 4], silence].sum() + nothing) / 3
    assert loss_unnamed.item() == pytest.approx(float(with_unnamed + best + allowed_both), abs=1e-6)
    # peak=2: the best run of two frames inside the window (frames 1-2, 2-3, or 3 alone).
    runs = [log_probs[1:3, 0].mean(), log_probs[2:4, 0].mean(), log_probs[3, 0]]
    held = -max(runs)
    loss_held, _, _ = max_pooling_loss(logits, frames, windows, nothing=[silence], peak=2)
    assert held > best  # the best single frame is higher than any two frames' mean
    assert loss_held.item() == pytest.approx(float(background + held + allowed), abs=1e-6)
    # No window: the background frames alone.
    loss, label, _ = max_pooling_loss(logits, frames, torch.full((1, 2, 3), -1), nothing=[silence])
    assert loss.item() == pytest.approx(float(background), abs=1e-6) and len(label) == 0


def test_streaming_settings_are_checked_at_composition(fsdd_root, noise_root):
    stream_config(fsdd_root, noise_root)  # the recipe composes as it is
    compose_config(["recipe=synthetic/kws_stream"])
    for override, needle in [("model.pooling=mean", "stream.enabled=true needs model.pooling=last"),
                             ("features.normalize=true", "needs features.normalize=false"),
                             ("augment.warp_spectrogram=true",
                              "needs augment.warp_spectrogram=false"),
                             ("stream.words=0", "stream.words=0 is out of range"),
                             ("stream.noise_dbfs_min=-10", "stream.noise_dbfs_min=-10.0 is above")]:
        with pytest.raises(UsageError, match=needle):
            stream_config(fsdd_root, noise_root, override)


def test_the_streaming_export_gives_the_frames_training_scores(fsdd_root, tmp_path):
    model, cfg = tiny_model("features.normalize=false", "model.pooling=last", labels=DIGITS)
    path = export_model(model, cfg.data, tmp_path / "model.onnx", streaming=True)
    wave = np.concatenate([audio.load(p, cfg.data.sample_rate)
                           for p in sorted(fsdd_root.glob("3_*.wav"))[:3]]).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(wave)[None], per_frame=True)[0].numpy()
    stream = StreamingRecognizer(path, threads=1)
    steps = [stream.push(chunk) for chunk in np.array_split(wave, 9)] + [stream.flush()]
    got = np.concatenate([step.logits for step in steps])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_an_eager_tracker_gives_each_event_out_when_its_run_is_over():
    labels = ["yes", "no", SILENCE]
    probs = np.zeros((40, 3), np.float32)
    probs[:, 2] = 1.0
    probs[3:6] = [0.9, 0.0, 0.1]  # "yes" at steps 3-5, then "no" at 9-10
    probs[9:11] = [0.0, 0.9, 0.1]
    starts = 0.1 * np.arange(40)
    given = {}
    for eager in (False, True):
        tracker = EventTracker(labels, 0.5, 0.5, 1, 0.0, eager=eager)
        events = []
        for i in range(40):  # a step at a time, as a live stream
            for event in tracker.push(Posteriors(starts[i : i + 1], starts[i : i + 1] + 1.0, probs[i : i + 1])):
                given[eager, event.label] = i
                events.append(event)
        events += tracker.close()
        assert [e.label for e in events] == ["yes", "no"]
        assert events[0].end <= events[1].start  # never overlapping
    # Spans of 1 s: waiting until no later run can start inside "yes" holds it back 1 s.
    assert given[True, "yes"] == 7 and given[False, "yes"] >= 10


def test_a_model_trained_for_streaming_says_so_and_streams_with_one_state(fsdd_root, tmp_path):
    model, cfg = tiny_model("features.normalize=false", "model.pooling=last",
                            labels=["3", "7", SILENCE])
    with torch.no_grad():  # peaky posteriors that follow the input and the state: events to compare
        model.head.weight.mul_(30.0)
    trained = plain(stream_config(fsdd_root, fsdd_root).stream)
    paths = {kind: export_model(model, cfg.data, tmp_path / f"{kind}.onnx", streaming=True,
                                stream_training=trained if kind == "stream" else None)
             for kind in ("stream", "clips")}
    info = open_model(paths["stream"], threads=1)[1]
    assert info.stream_training == trained and open_model(paths["clips"], threads=1)[1].stream_training is None
    assert json.loads({p.key: p.value for p in onnx.load(str(paths["stream"])).metadata_props}
                      ["stream_training"]) == trained
    assert "trained for streaming: 6 s sequences of up to 5 clips" in card.render(info)
    assert info.card["limits"][0].startswith("Trained for streaming")

    recording = tmp_path / "digits.wav"
    assemble(recording, [(p, "3") for p in sorted(fsdd_root.glob("3_*.wav"))[:4]], [], seed=1)
    # Events with their scores unrounded: a restarted state moves them a little.
    runs = {(kind, restart): list(detect(paths[kind], recording, Settings(
                threshold=0.5, restart=restart), threads=1))
            for kind in paths for restart in (None, 0.0, 0.25)}
    assert runs["stream", 0.0], "no events: nothing to compare"
    assert runs["stream", None] == runs["stream", 0.0] != runs["stream", 0.25]
    assert runs["clips", None] == runs["clips", 0.25] != runs["clips", 0.0]
    # A model trained for streaming smooths over STREAM_SMOOTH, a clip model over CLIP_SMOOTH.
    for kind, own, other in (("stream", STREAM_SMOOTH, CLIP_SMOOTH), ("clips", CLIP_SMOOTH, STREAM_SMOOTH)):
        smoothed = {smooth: list(detect(paths[kind], recording, Settings(threshold=0.5, smooth=smooth),
                                        threads=1)) for smooth in (own, other)}
        assert smoothed[own] == runs[kind, None] != smoothed[other], kind


@pytest.mark.slow
def test_a_streaming_run_trains_and_exports_a_model_that_says_so(fsdd_root, noise_root, tmp_path, capsys):
    cfg = stream_config(fsdd_root, noise_root, "model.hidden_size=8", "model.num_layers=1",
                        "trainer.epochs=1", "trainer.limit_train_batches=2", "trainer.progress=false",
                        "data.num_workers=0", "stream.seconds=3", "stream.words=2")
    summary = fit(cfg, tmp_path / "run")
    # Scored on keyword occurrences of the test split's sequences.
    assert summary["clips"]["test"] > 0 and 0.0 <= summary["test_accuracy"] <= 1.0
    info = open_model(summary["onnx_streaming"], threads=1)[1]
    assert info.streaming and info.stream_training["seconds"] == 3.0
    assert open_model(summary["onnx"], threads=1)[1].stream_training["words"] == 2
    assert cli.main(["info", summary["onnx_streaming"]]) == 0
    assert "trained for streaming: 3 s sequences of up to 2 clips" in capsys.readouterr().out
