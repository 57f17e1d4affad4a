"""Hostile audio (tests/hostile.py): every file either decodes to the right mono float32 signal
or raises AudioError naming the file and the problem; `speechrnn predict` reports each bad file
and goes on; an hour-long file is classified in bounded memory."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from hostile import (TONE_HZ, Case, encode, make_corpus, make_unreadable, tone,
                     write_long_clip)
from speechrnn import audio
from speechrnn.errors import AudioError
from helpers import REPO, tiny_onnx

TARGET_RATE = 16000
HOUR_SECONDS = 3600


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[Case]:
    return make_corpus(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="session")
def hour_clip(tmp_path_factory) -> Path:
    return write_long_clip(tmp_path_factory.mktemp("long") / "one hour.wav", HOUR_SECONDS)


# Parametrised by name; the files themselves come from the corpus fixture.
VALID = {"pcm16", "pcm24", "float32", "channels8", "rate1k", "rate96k", "one_ms", "space_name",
         "non_utf8_name", "mp3_named_wav"}
INVALID = {"empty", "zero_samples", "truncated_header", "text", "mp3_truncated", "random_bytes",
           "nan_float", "inf_float", "directory", "symlink_loop"}


def by_name(corpus: list[Case], name: str) -> Case:
    return next(c for c in corpus if c.name == name)


def test_the_corpus_has_every_hostile_class(corpus):
    assert {c.name for c in corpus if c.valid} == VALID
    assert {c.name for c in corpus if not c.valid} == INVALID
    # The odd names really are odd on disk.
    names = os.listdir(os.fsencode(corpus[0].path.parent))
    assert b"caf\xe9 \xff\xfe.wav" in names and b"a clip with spaces.wav" in names


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_audio_decodes_to_its_signal_and_resamples_to_16k(corpus, name):
    case = by_name(corpus, name)
    samples, rate = audio.read(case.path)
    assert rate == case.rate and samples.dtype == np.float32 and samples.ndim == 1
    np.testing.assert_allclose(samples, case.signal, atol=case.atol + 1e-7)

    resampled = audio.load(case.path, TARGET_RATE)
    assert resampled.dtype == np.float32 and resampled.ndim == 1
    assert len(resampled) == round(len(case.signal) * TARGET_RATE / case.rate)
    assert np.isfinite(resampled).all()
    if len(resampled) >= TARGET_RATE // 10:  # long enough to measure its pitch
        spectrum = np.abs(np.fft.rfft(resampled))
        peak_hz = np.argmax(spectrum) * TARGET_RATE / len(resampled)
        assert abs(peak_hz - TONE_HZ) <= TARGET_RATE / len(resampled), peak_hz
    fixed = audio.load(case.path, TARGET_RATE, TARGET_RATE)
    assert fixed.shape == (TARGET_RATE,) and fixed.dtype == np.float32


@pytest.mark.parametrize("name", sorted(INVALID))
def test_bad_audio_raises_audio_error_naming_file_and_problem(corpus, name):
    case = by_name(corpus, name)
    for call in (lambda: audio.read(case.path), lambda: audio.load(case.path, TARGET_RATE, 16000)):
        with pytest.raises(AudioError) as caught:
            call()
        assert caught.value.path == str(case.path)
        assert str(case.path) in str(caught.value)
        assert re.search(case.problem, caught.value.problem), caught.value.problem


# audio.MIN_RATE, MAX_RATE: a header's rate outside 1-768 kHz is corruption, not audio (a 1 Hz
# one would make every sample 16,000 at 16 kHz). The boundaries themselves are audio.
@pytest.mark.parametrize("rate,accepted", [(1, False), (999, False), (1000, True), (768_000, True),
                                           (768_001, False), (2**31 - 1, False)])
def test_a_sample_rate_outside_1_to_768_khz_is_refused(tmp_path, rate, accepted):
    path = tmp_path / f"rate {rate}.wav"
    signal = np.linspace(-0.5, 0.5, 64, dtype=np.float32)
    sf.write(path, signal, rate, subtype="FLOAT")
    assert sf.info(path).samplerate == rate
    if accepted:
        samples, got = audio.read(path)
        assert got == rate
        np.testing.assert_array_equal(samples, signal)
        assert audio.load(path, TARGET_RATE).size == round(64 * TARGET_RATE / rate)
        return
    for call in (lambda: audio.read(path), lambda: audio.load(path, TARGET_RATE),
                 lambda: audio.load(path, TARGET_RATE, TARGET_RATE)):
        with pytest.raises(AudioError, match=rf"sample rate {rate} Hz is outside 1000-768000 Hz") as caught:
            call()
        assert caught.value.path == str(path)


# audio.MAX_PEAK: float samples are nominally within +-1; beyond +-100 (in any channel, before
# the mix-down could cancel it) the file is corrupt or holds integers stored as float.
@pytest.mark.parametrize("channels,accepted", [
    ([[1.0]], True), ([[100.0]], True), ([[-100.0]], True), ([[100.5]], False), ([[-250.0]], False),
    ([[3e9]], False), ([[200.0, -200.0]], False),
], ids=["1", "100", "-100", "100.5", "-250", "3e9", "stereo+-200"])
def test_float_samples_beyond_a_peak_of_100_are_refused(tmp_path, channels, accepted):
    path = tmp_path / "loud.wav"
    signal = np.zeros((1600, len(channels[0])), np.float32)
    signal[:8] = 0.25
    signal[800] = channels[0]
    sf.write(path, signal, TARGET_RATE, subtype="FLOAT")
    if accepted:
        samples, rate = audio.read(path)
        assert rate == TARGET_RATE
        np.testing.assert_array_equal(samples, signal[:, 0])
        return
    peak = np.abs(signal).max()
    for call in (lambda: audio.read(path), lambda: audio.load(path, TARGET_RATE, TARGET_RATE)):
        with pytest.raises(AudioError, match=re.escape(f"sample values reach {peak:.3g}, far outside")) as caught:
            call()
        assert caught.value.path == str(path)


def _read_as_nobody(path: Path, pipe: int) -> None:
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)
    try:
        audio.read(path)
        result = "decoded"
    except AudioError as exc:
        result = exc.problem
    os.write(pipe, pickle.dumps(result))


def read_unprivileged(path: Path) -> str:
    """audio.read in a forked child that has dropped root for user nobody: what it reports."""
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child never returns into pytest
        try:
            os.close(readable)
            _read_as_nobody(path, writable)
        finally:
            os._exit(0)
    os.close(writable)
    with os.fdopen(readable, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


@pytest.fixture(scope="module")
def unreadable() -> Path:
    folder = Path(tempfile.mkdtemp())  # in /tmp, so an unprivileged process can reach it
    yield make_unreadable(folder)
    shutil.rmtree(folder)


def test_an_unreadable_file_is_reported_as_permission_denied(unreadable):
    if os.geteuid() == 0:
        # Root reads any file whatever its mode (as in CI): the guarantee is checked as user
        # nobody, and root itself decodes the file.
        assert audio.read(unreadable)[1] == 16000
        assert read_unprivileged(unreadable).startswith("permission denied")
    else:
        with pytest.raises(AudioError, match="permission denied"):
            audio.read(unreadable)


@pytest.mark.slow
def test_windows_of_a_long_file_read_only_what_is_asked(hour_clip):
    rate = 16000
    for start in (0, 1234567, (HOUR_SECONDS - 1) * rate):
        window, got_rate = audio.read(hour_clip, start=start, frames=rate)
        assert got_rate == rate and window.shape == (rate,)
    tail, _ = audio.read(hour_clip, start=HOUR_SECONDS * rate - 100, frames=rate)
    assert tail.shape == (100,)
    with pytest.raises(AudioError, match="no samples"):
        audio.read(hour_clip, start=HOUR_SECONDS * rate + 5, frames=rate)


# --- speechrnn predict on the corpus ---------------------------------------------------------

@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tiny_onnx(tmp_path_factory.mktemp("model") / "tiny.onnx", ["zero", "one", "two"])


def run_predict(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    # A strict UTF-8 stdout, as a desktop locale (en_US.UTF-8) gives; the C locale is lenient.
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict"}
    return subprocess.run([sys.executable, "-m", "speechrnn", "predict", *args],
                          capture_output=True, cwd=REPO, timeout=timeout, env=env)


@pytest.mark.slow
def test_predict_labels_good_files_and_names_the_problem_of_bad_ones(corpus, model, fsdd_root,
                                                                   unreadable):
    folder = corpus[0].path.parent
    fsdd = [fsdd_root / f"{digit}_jackson_0.wav" for digit in (0, 1, 2)]
    for clip in fsdd:
        shutil.copy(clip, folder / clip.name)
    # The looping folder link must not hang the recursive search.
    result = run_predict(str(model), str(folder), str(unreadable), "--format", "json", timeout=120)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1, stderr
    assert "Traceback" not in stderr
    rows = {row["path"]: row for row in json.loads(result.stdout)}

    for case in corpus:
        if case.name == "directory":
            continue  # a folder named .wav is searched, not classified
        row = rows.pop(str(case.path))
        if case.valid:
            # The top probability of three is at least a third.
            assert row["label"] in ("zero", "one", "two") and 1 / 3 <= row["score"] <= 1, row
        else:
            assert re.search(case.problem, row["error"]), row
    for clip in fsdd:
        assert rows.pop(str(folder / clip.name))["label"] in ("zero", "one", "two")
    if os.geteuid() == 0:  # root reads it anyway (see test_an_unreadable_file_...)
        assert "label" in rows.pop(str(unreadable))
    else:
        assert rows.pop(str(unreadable))["error"].startswith("permission denied")
    assert not rows, f"unexpected rows: {rows}"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_predict_output_survives_names_that_are_not_utf8(corpus, model, fmt):
    case = by_name(corpus, "non_utf8_name")
    result = run_predict(str(model), str(case.path), str(by_name(corpus, "empty").path),
                         "--format", fmt)
    stderr = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1 and "Traceback" not in stderr, stderr
    if fmt == "json":  # JSON escapes the undecodable bytes; they read back as the same name
        good, bad = json.loads(result.stdout)
        assert good["path"] == str(case.path) and "label" in good
        assert "not readable audio" in bad["error"]
    else:
        assert os.fsencode(case.path) in result.stdout, "the name is printed as the bytes it is"
        assert b"not readable audio" in result.stdout


PEAK_RSS = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
"""


def peak_rss(*command: str) -> int:
    """Peak resident memory in bytes of a successful ``command``, measured from a fresh parent
    (RUSAGE_CHILDREN of this process would include every earlier child)."""
    out = subprocess.run([sys.executable, "-c", PEAK_RSS, *command], capture_output=True,
                         text=True, cwd=REPO, timeout=300, check=True)
    code, rss = map(int, out.stdout.split())
    assert code == 0, f"{command} failed"
    return rss


@pytest.mark.slow
def test_predict_on_an_hour_long_file_runs_in_bounded_memory(hour_clip, model, tmp_path):
    short = tmp_path / "one second.wav"
    sf.write(short, tone(16000, 1.0), 16000)
    predict = [sys.executable, "-m", "speechrnn", "predict", str(model)]
    baseline = peak_rss(*predict, str(short))
    hour = peak_rss(*predict, str(hour_clip))
    decoded_hour = HOUR_SECONDS * 16000 * 4  # float32 samples of the whole file: 230 MB
    print(f"peak RSS: predict on 1 s {baseline / 2**20:.0f} MiB, on 1 h {hour / 2**20:.0f} MiB")
    assert hour - baseline < decoded_hour / 4


@pytest.mark.parametrize("rate", [8000, 16000, 44100])
def test_load_of_a_long_file_decodes_only_the_centre_and_matches_a_full_decode(tmp_path, rate):
    path = tmp_path / "long.wav"
    sf.write(path, np.random.default_rng(rate).uniform(-0.5, 0.5, rate * 3).astype(np.float32),
             rate, subtype="FLOAT")
    samples, _ = audio.read(path)
    full = audio.fix_length(audio.resample(samples, rate, TARGET_RATE), TARGET_RATE)
    np.testing.assert_allclose(audio.load(path, TARGET_RATE, TARGET_RATE), full, atol=1e-5)


# --- training on a folder that holds bad files -----------------------------------------------

GOOD_PER_LABEL = {"zero": "0", "one": "1"}


@pytest.fixture(scope="module")
def folder_dataset(corpus, fsdd_root, tmp_path_factory) -> tuple[Path, list[Path]]:
    """root/<label>/ with real FSDD clips, plus hostile files (regular files) among them."""
    root = tmp_path_factory.mktemp("folder_dataset")
    for label, digit in GOOD_PER_LABEL.items():
        (root / label).mkdir()
        for speaker in ("jackson", "theo", "nicolas"):
            for index in range(4):
                name = f"{digit}_{speaker}_{index}.wav"
                shutil.copy(fsdd_root / name, root / label / f"{speaker}-{index}.wav")
    bad = []
    for i, case in enumerate(c for c in corpus if not c.valid and c.path.is_file()):
        bad.append(root / list(GOOD_PER_LABEL)[i % 2] / f"bad-{case.name}.wav")
        shutil.copy(case.path, bad[-1])
    return root, bad


def folder_config(root: Path, *overrides: str):
    from hydra import compose, initialize_config_dir

    from speechrnn.config import CONF_DIR

    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        return compose("config", overrides=[
            "recipe=smoke", "data=folder", f"data.root={root}", "export.enabled=false",
            "data.val_fraction=0.25", "data.test_fraction=0.25", "trainer.epochs=1", *overrides])


def all_paths(splits) -> set[str]:
    return {clip.path for _, clips in splits.items() for clip in clips}


def test_check_clips_skips_bad_files_and_lists_them(folder_dataset, caplog):
    from speechrnn.data import build_splits
    from speechrnn.data.validate import check_clips

    root, bad = folder_dataset
    splits = build_splits(folder_config(root).data)
    assert {str(p) for p in bad} <= all_paths(splits)
    with caplog.at_level("WARNING"):
        checked = check_clips(splits, "skip")
    assert all_paths(checked) == all_paths(splits) - {str(p) for p in bad}
    assert checked.labels == splits.labels
    warning = caplog.text
    assert f"skipped {len(bad)} clips of {len(bad)} audio files" in warning
    for path in bad:
        assert str(path) in warning


def test_check_clips_with_error_lists_every_bad_file(folder_dataset):
    from speechrnn.data import build_splits
    from speechrnn.data.validate import check_clips
    from speechrnn.errors import SpeechRNNError

    root, bad = folder_dataset
    with pytest.raises(SpeechRNNError, match=f"{len(bad)} audio files cannot be used") as caught:
        check_clips(build_splits(folder_config(root).data), "error")
    for path in bad:
        assert str(path) in str(caught.value)
    assert "data.on_bad_file=skip" in str(caught.value)


def test_check_clips_decodes_a_shared_file_once_and_drops_cuts_past_its_end(tmp_path, monkeypatch):
    from speechrnn.data import Clip, Splits
    from speechrnn.data.validate import check_clips

    reads = []
    real_read = audio.read
    monkeypatch.setattr(audio, "read", lambda path, *a, **k: reads.append(path) or real_read(path, *a, **k))
    noise = tone(16000, 3.0)
    path = tmp_path / "noise.wav"
    sf.write(path, noise, 16000)
    cuts = [Clip(str(path), "_silence_", start=s, frames=16000) for s in (0, 8000, 16000, 32000)]
    past_end = Clip(str(path), "_silence_", start=len(noise), frames=16000)
    splits = Splits(labels=["_silence_", "yes"], train=cuts[:2] + [past_end], val=cuts[2:3], test=cuts[3:])
    checked = check_clips(splits, "skip")
    assert reads == [str(path)]
    assert checked.train == cuts[:2] and checked.val == cuts[2:3] and checked.test == cuts[3:]


def cut_wav(path: Path, seconds: float = 1.0, keep: float = 0.5) -> Path:
    """A 16-bit WAV of ``seconds`` of tone with only the first ``keep`` of its bytes left: the
    header still promises all of it, as after an interrupted copy."""
    data = encode(tone(16000, seconds), 16000)
    path.write_bytes(data[: round(len(data) * keep)])
    return path


def test_a_wav_cut_short_decodes_what_is_there_and_says_so(tmp_path):
    whole = tmp_path / "whole.wav"
    whole.write_bytes(encode(tone(16000, 1.0), 16000))
    cut = cut_wav(tmp_path / "cut.wav")
    assert audio.cut_short(whole) is None
    samples, _ = audio.read(cut)
    assert 7_900 < len(samples) < 8_000
    assert audio.cut_short(cut).startswith("cut short: its header promises 32000 bytes of audio, "
                                           "the file holds only 159")
    # A writer that cannot seek back (ffmpeg into a pipe) leaves 0xFFFFFFFF: not a cut.
    piped = bytearray(whole.read_bytes())
    piped[40:44] = (0xFFFFFFFF).to_bytes(4, "little")
    (tmp_path / "piped.wav").write_bytes(piped)
    assert audio.cut_short(tmp_path / "piped.wav") is None
    assert len(audio.read(tmp_path / "piped.wav")[0]) == 16000


def test_check_clips_logs_a_file_cut_short_once(tmp_path, caplog):
    from speechrnn.data import Clip, Splits
    from speechrnn.data.validate import check_clips

    cut = cut_wav(tmp_path / "cut.wav")
    clips = [Clip(str(cut), "yes", start=start, frames=4000) for start in (0, 4000)]
    splits = Splits(labels=["yes"], train=clips, val=clips[:1])
    with caplog.at_level("WARNING"):
        assert check_clips(splits, "skip") == splits
    warnings = [r.getMessage() for r in caplog.records if "cut short" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith(f"{cut}: cut short: its header promises")


def test_a_label_whose_training_files_are_all_unusable_is_refused(tmp_path, caplog):
    from speechrnn.data import build_splits
    from speechrnn.data.validate import check_clips
    from speechrnn.errors import SpeechRNNError

    root = tmp_path / "data"
    for label in ("yes", "no"):
        (root / label).mkdir(parents=True)
        for i in range(8):
            path = root / label / f"{i}.wav"
            if label == "yes":
                path.write_bytes(encode(tone(16000, 0.25), 16000))
            else:
                path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    splits = build_splits(folder_config(root).data)
    trained = sum(clip.label == "no" for clip in splits.train)
    with pytest.raises(SpeechRNNError) as caught:
        check_clips(splits, "skip")
    assert str(caught.value) == (f"{root / 'no'}: none of the {trained} training files of label "
                                 "'no' can be used (listed above); fix them, or remove the label")
    assert f"{root / 'no' / '0.wav'}: not readable audio" in caplog.text


@pytest.mark.slow
def test_training_skips_bad_files_or_stops_before_training_listing_them(folder_dataset, tmp_path):
    from speechrnn.errors import SpeechRNNError
    from speechrnn.training import fit

    root, bad = folder_dataset
    summary = fit(folder_config(root), tmp_path / "skip")
    good = 12 * len(GOOD_PER_LABEL)
    assert sum(summary["clips"].values()) == good
    assert summary["labels"] == sorted(GOOD_PER_LABEL)

    with pytest.raises(SpeechRNNError) as caught:
        fit(folder_config(root, "data.on_bad_file=error"), tmp_path / "error")
    for path in bad:
        assert str(path) in str(caught.value)
    assert not (tmp_path / "error" / "checkpoints" / "last.pt").exists(), "training started"
