"""The espeak-ng synthetic set: layout, audio format, speaker splits, determinism, CLI, cache."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf
from scipy.signal import welch

from speechrnn import cli
from speechrnn.config import DataConfig
from speechrnn.data import noises, synthetic
from speechrnn.data.espeak import CliEspeak, LibEspeak, Prosody, open_backend
from speechrnn.data.synthetic import (
    ACCENTS,
    HIGH_VARIANTS,
    LOW_VARIANTS,
    NOISE_DIR,
    draw_speakers,
    ensure_rendered,
    render,
    split_speakers,
)
from speechrnn.errors import SpeechRNNError
from helpers import REPO

# The conftest fixture's arguments, for renders that must match it.
TINY = dict(words=["yes", "no", "up"], unknown_words=["cat", "tree"], per_word=12, unknown_per_word=4)
CLIP_NAME = re.compile(r"[0-9a-f]{8}_nohash_\d+\.wav")


def clips(root: Path) -> list[str]:
    """Every clip as "word/name.wav", like the split lists."""
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.wav") if p.parent.name != NOISE_DIR)


def all_files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def speaker(rel: str) -> str:
    return Path(rel).name.split("_nohash_")[0]


def read_list(root: Path, name: str) -> list[str]:
    return (root / name).read_text().splitlines()


# ---------------------------------------------------------------- layout and audio


def test_layout(tiny_synth):
    words = {"yes": 12, "no": 12, "up": 12, "cat": 4, "tree": 4}
    folders = {p.name for p in tiny_synth.iterdir() if p.is_dir()}
    assert folders == set(words) | {NOISE_DIR}
    for word, count in words.items():
        names = [p.name for p in (tiny_synth / word).iterdir()]
        assert len(names) == count and all(CLIP_NAME.fullmatch(n) for n in names)
    noise = sorted(p.name for p in (tiny_synth / NOISE_DIR).iterdir())
    assert noise == sorted(f"{kind}.wav" for kind in noises.KINDS)
    info = json.loads((tiny_synth / synthetic.MARKER).read_text())
    assert info["clips"] == 44 and info["words"] == TINY["words"] and info["seed"] == 0
    assert not [p for p in tiny_synth.parent.iterdir() if ".tmp-" in p.name]  # temp folder gone


def test_clips_are_one_second_16k_mono_pcm16(tiny_synth):
    assert len(clips(tiny_synth)) == 44
    for rel in clips(tiny_synth):
        info = sf.info(tiny_synth / rel)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", 16000), rel


def test_words_are_audible_and_never_cut(tiny_synth):
    edge = 320  # 20 ms
    assert len(clips(tiny_synth)) == 44
    for rel in clips(tiny_synth):
        samples, _ = sf.read(tiny_synth / rel, dtype="float32")
        peak = np.abs(samples).max()
        assert 20 * np.log10(peak) > -25, rel
        loud = np.flatnonzero(np.abs(samples) > 0.1 * peak)
        assert loud[-1] - loud[0] > 0.05 * 16000, rel  # a word, not a click
        for end in (samples[:edge], samples[-edge:]):
            assert np.sqrt(np.mean(end**2)) < 0.01 * peak, rel  # only the faint noise floor


def test_noise_files_have_their_colour(tiny_synth):
    slopes = {}
    for colour in ("white", "pink", "brown"):
        samples, rate = sf.read(tiny_synth / NOISE_DIR / f"{colour}_noise.wav", dtype="float32")
        assert rate == 16000 and samples.shape == (160000,)
        assert np.sqrt(np.mean(samples**2)) == pytest.approx(0.1, rel=0.05)
        freqs, power = welch(samples, rate, nperseg=4096)
        band = (freqs > 100) & (freqs < 4000)
        slopes[colour] = np.polyfit(np.log10(freqs[band]), np.log10(power[band]), 1)[0]
    # Power falls as 1/f^0, 1/f^1 and 1/f^2.
    assert slopes == pytest.approx({"white": 0.0, "pink": -1.0, "brown": -2.0}, abs=0.15)


def test_background_sounds_are_what_they_are_named(tiny_synth):
    def read(kind):
        samples, rate = sf.read(tiny_synth / NOISE_DIR / f"{kind}.wav", dtype="float32")
        assert rate == 16000 and samples.shape == (160000,)
        return samples

    assert not read("digital_silence").any()
    freqs, power = welch(read("hum"), 16000, nperseg=16000)
    mains = freqs[np.argmax(power)]
    assert mains % 50 == 0 or mains % 60 == 0, mains  # a mains harmonic, not a broad band
    assert np.sqrt(np.mean(read("hum") ** 2)) == pytest.approx(10 ** (-30 / 20), rel=0.05)
    # Tones: a few strong harmonics stand far out of the spectrum, unlike noise.
    _, power = welch(read("tones"), 16000, nperseg=4096)
    assert np.percentile(power, 99.5) > 1000 * np.median(power)
    # Clatter: knocks, so short frames are much louder than the typical one (noise is steady).
    frames = read("clatter").reshape(-1, 160)
    level = np.sqrt(np.mean(frames**2, axis=1))
    assert np.max(level) > 10 * np.median(level)
    # Clicks: silence with a few short bursts, so most 10 ms frames are exactly zero.
    frames = read("clicks").reshape(-1, 160)
    active = frames.any(axis=1)
    assert 0 < active.mean() < 0.1 and np.abs(frames).max() > 0.01
    white = read("white_noise").reshape(-1, 160)
    assert np.max(np.sqrt(np.mean(white**2, axis=1))) < 2 * np.median(np.sqrt(np.mean(white**2, axis=1)))


# ---------------------------------------------------------------- speakers and splits


def test_splits_are_disjoint_by_speaker(tiny_synth):
    everything = clips(tiny_synth)
    val = read_list(tiny_synth, "validation_list.txt")
    test = read_list(tiny_synth, "testing_list.txt")
    assert val and test and set(val) <= set(everything) and set(test) <= set(everything)
    train = set(everything) - set(val) - set(test)
    speakers = [{speaker(rel) for rel in split} for split in (train, val, test)]
    assert not speakers[0] & speakers[1] and not speakers[0] & speakers[2] and not speakers[1] & speakers[2]
    # With at least as many clips as speakers, every command word is in every split.
    for split in (train, val, test):
        assert {Path(rel).parent.name for rel in split} >= {"yes", "no", "up"}
    # A speaker's clips of a word are numbered 0, 1, ...
    for rel in everything:
        same = [r for r in everything if Path(r).parent == Path(rel).parent and speaker(r) == speaker(rel)]
        assert sorted(int(r.rsplit("_", 1)[1][:-4]) for r in same) == list(range(len(same)))


def test_split_sizes_are_about_80_10_10():
    speakers = draw_speakers(0, 100)
    splits = split_speakers(speakers, seed=0)
    assert {name: len(ids) for name, ids in splits.items()} == {"train": 80, "val": 10, "test": 10}
    assert set().union(*splits.values()) == {s.id for s in speakers}


def test_speakers_are_diverse_and_stable():
    speakers = draw_speakers(0, 100)
    assert len({s.id for s in speakers}) == 100
    voices = [s.prosody.voice for s in speakers]
    assert len({v.split("+")[0] for v in voices}) == len(ACCENTS)
    variants = {v.split("+")[1] if "+" in v else "" for v in voices}
    assert variants & set(HIGH_VARIANTS) and variants & set(LOW_VARIANTS) and len(variants) > 40
    rates = [s.prosody.rate for s in speakers]
    assert max(rates) - min(rates) > 80
    assert draw_speakers(0, 10) == speakers[:10]  # speaker k does not depend on how many are drawn
    assert {s.id for s in draw_speakers(1, 10)}.isdisjoint(s.id for s in speakers[:10])


def test_every_voice_exists_in_the_bundled_data():
    import espeakng_loader

    # espeak-ng quietly ignores an unknown variant, so check the files.
    voices = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    assert [v for v in HIGH_VARIANTS + LOW_VARIANTS if v and not (voices / v).is_file()] == []
    with LibEspeak() as backend:
        for accent in ACCENTS:
            assert backend.synth("yes", Prosody(accent)).size > 0
        with pytest.raises(SpeechRNNError, match="no voice 'xx'"):
            backend.synth("yes", Prosody("xx"))


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_bytes_whatever_the_workers(tiny_synth, tmp_path):
    for workers in (1, 2):
        again = render(tmp_path / f"w{workers}", **TINY, seed=0, workers=workers)
        assert all_files(again) == all_files(tiny_synth) and len(all_files(again)) > 44
        for rel in all_files(tiny_synth):
            assert (again / rel).read_bytes() == (tiny_synth / rel).read_bytes(), (workers, rel)


def test_another_seed_gives_other_speakers_and_audio(tiny_synth, tmp_path):
    other = render(tmp_path / "other", **TINY, seed=1)
    assert {speaker(r) for r in clips(other)}.isdisjoint(speaker(r) for r in clips(tiny_synth))
    for name in ("white_noise.wav", "pink_noise.wav"):
        assert (other / NOISE_DIR / name).read_bytes() != (tiny_synth / NOISE_DIR / name).read_bytes()


def test_fresh_libespeak_instances_agree():
    # libespeak-ng carries state from one utterance to the next (and the Klatt voices use libc's
    # rand()); each LibEspeak loads its own copy, so earlier use elsewhere changes nothing.
    voices = [Prosody("en+f1"), Prosody("en-us+Reed", range=80), Prosody("en+whisper")]
    with LibEspeak() as first:
        expected = [first.synth("left!", voice, seed=3) for voice in voices]
    with LibEspeak() as busy:
        for voice in voices:
            busy.synth("marvin", voice, seed=9)
        with LibEspeak() as second:
            got = [second.synth("left!", voice, seed=3) for voice in voices]
    for want, have in zip(expected, got):
        assert want.size > 1000 and np.array_equal(want, have)


# ---------------------------------------------------------------- render behaviour


def test_long_words_are_sped_up_to_fit(tmp_path):
    out = render(tmp_path / "long", words=["antidisestablishmentarianism"], unknown_words=[], per_word=2)
    assert len(clips(out)) == 2
    for rel in clips(out):
        samples, _ = sf.read(out / rel, dtype="float32")
        loud = np.flatnonzero(np.abs(samples) > 0.1 * np.abs(samples).max())
        assert loud[-1] - loud[0] > 0.5 * 16000 and loud[0] > 160 and loud[-1] < 16000 - 160


def test_a_failed_render_leaves_nothing_behind(tmp_path):
    out = tmp_path / "failed"
    with pytest.raises(SpeechRNNError, match="longer than 1 s even at the fastest rate"):
        render(out, words=["yes", "pneumonoultramicroscopicsilicovolcanoconiosis"], unknown_words=[],
               per_word=1, workers=1)
    assert list(tmp_path.iterdir()) == []


def test_rendering_again_replaces_an_earlier_render(tmp_path):
    out = tmp_path / "set"
    render(out, words=["go"], unknown_words=[], per_word=2, seed=0)
    render(out, words=["stop"], unknown_words=[], per_word=2, seed=4)
    assert json.loads((out / synthetic.MARKER).read_text())["seed"] == 4
    assert not (out / "go").exists() and len(list((out / "stop").iterdir())) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["set"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(per_word=0), "at least 1"),
        (dict(seed=-1), "seed must be 0 or more"),
        (dict(words=["yes", "Yes"]), "'Yes' cannot be a word folder"),
        (dict(words=["yes"], unknown_words=["yes"]), "listed twice: yes"),
        (dict(words=[]), "no words"),
        (dict(workers=0), "workers must be at least 1"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, kwargs, message):
    with pytest.raises(SpeechRNNError, match=message):
        render(tmp_path / "out", **{"words": ["yes"], "unknown_words": [], "per_word": 1, **kwargs})
    assert not (tmp_path / "out").exists()


def test_never_writes_into_a_folder_that_is_not_a_render(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SpeechRNNError, match="exists and is not a synthetic dataset"):
        render(tmp_path, words=["yes"], unknown_words=[], per_word=1)
    assert all_files(tmp_path) == ["notes.txt"]


# ---------------------------------------------------------------- ensure_rendered (the data config)


def test_ensure_rendered_renders_once_into_the_cache(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("SPEECHRNN_CACHE", str(tmp_path / "cache"))
    cfg = OmegaConf.structured(DataConfig)
    cfg.words, cfg.unknown = ["yes", "no"], False
    cfg.synth.per_word = 3
    with caplog.at_level(logging.INFO, logger="speechrnn.data.synthetic"):
        root = ensure_rendered(cfg)
    assert "rendering the synthetic dataset" in caplog.text
    assert root.parent == tmp_path / "cache" / "synthetic"
    assert {p.name for p in root.iterdir() if p.is_dir()} == {"yes", "no", NOISE_DIR}
    stamp = (root / synthetic.MARKER).stat().st_mtime_ns
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="speechrnn.data.synthetic"):
        assert ensure_rendered(cfg) == root  # reused, not rendered again
    assert caplog.text == "" and (root / synthetic.MARKER).stat().st_mtime_ns == stamp
    cfg.synth.seed = 1
    assert ensure_rendered(cfg) != root


def test_ensure_rendered_uses_or_fills_data_root(tmp_path, tiny_synth):
    assert ensure_rendered(DataConfig(root=str(tiny_synth))) == tiny_synth
    cfg = DataConfig(root=str(tmp_path / "mine"), words=["up"], unknown=True)
    cfg.synth.per_word, cfg.synth.unknown_per_word = 2, 1
    root = ensure_rendered(cfg)
    assert root == tmp_path / "mine"
    info = json.loads((root / synthetic.MARKER).read_text())
    assert info["words"] == ["up"] and info["unknown_words"] == list(synthetic.UNKNOWN_WORDS)


# ---------------------------------------------------------------- backends


def test_without_any_espeak_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # the wheel is not installed
    monkeypatch.setenv("PATH", "")
    with pytest.raises(SpeechRNNError, match="pip install espeakng-loader"):
        open_backend()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="no espeak-ng program on PATH")
def test_falls_back_to_the_espeak_ng_program(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    with open_backend() as backend:
        assert isinstance(backend, CliEspeak)
        samples = backend.synth("yes", Prosody("en-us+f3", rate=200, range=80))
    assert samples.dtype == np.int16 and samples.size > 0.1 * backend.sample_rate
    out = render(tmp_path / "cli", words=["yes"], unknown_words=[], per_word=2, workers=1)
    assert json.loads((out / synthetic.MARKER).read_text())["backend"][0].startswith("espeak-ng ")


# ---------------------------------------------------------------- the command line


@pytest.mark.slow
def test_synth_command_end_to_end(tmp_path):
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "speechrnn", "synth", "--out", str(out), "--words", "yes,no",
         "--unknown-words", "cat", "--per-word", "3", "--unknown-per-word", "2", "--seed", "5"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"output    {out}" in result.stdout and "clips     8 " in result.stdout
    assert [len(list((out / w).iterdir())) for w in ("yes", "no", "cat")] == [3, 3, 2]
    val, test = (set(read_list(out, name)) for name in ("validation_list.txt", "testing_list.txt"))
    counts = [len({speaker(r) for r in split}) for split in (val, test, set(clips(out)) - val - test)]
    assert "speakers  val {}, test {}, train {}".format(*counts) in result.stdout
    assert json.loads((out / synthetic.MARKER).read_text())["seed"] == 5


@pytest.mark.slow
def test_synth_command_rejects_bad_arguments_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "speechrnn", "synth", "--out", str(tmp_path / "x"), "--per-word", "0"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "argument --per-word: must be at least 1, got 0" in result.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--bogus"], 2, "unrecognized arguments: --bogus"),
        (["--seed", "minus"], 2, "argument --seed: expected a whole number, got 'minus'"),
        (["--words", "stop!"], 1, "'stop!' cannot be a word folder"),
        (["--words", ""], 1, "no words to render"),
    ],
)
def test_synth_command_errors(tmp_path, capsys, args, code, message):
    try:
        returned = cli.main(["synth", "--out", str(tmp_path / "x"), *args])
    except SystemExit as exit_:  # argparse's own errors
        returned = exit_.code
    assert returned == code and message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
