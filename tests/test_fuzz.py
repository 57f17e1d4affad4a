"""Property-based tests: whatever bytes or text come in, the audio loader, the checkpoint loader,
the manifest parser and config composition give a valid result or the project's own error type
(a Hydra/OmegaConf config error for overrides), never another exception."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from omegaconf import OmegaConf

from hostile import encode, tone
from speechrnn import audio, checkpoint
from speechrnn.config import CONF_DIR, compose_config
from speechrnn.data import build_splits
from speechrnn.errors import AudioError, SpeechRNNError

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
# Decoding and unpickling are fast: many more examples fit in a second.
FUZZ_MANY = settings(FUZZ, max_examples=250)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# --- audio -------------------------------------------------------------------------------------

SEEDS = [encode(tone(8000, 0.05), 8000, subtype, fmt) for fmt, subtype in [
    ("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"), ("WAV", "IMA_ADPCM"),
    ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III"), ("AIFF", "PCM_16"),
]]


@st.composite
def mutated_audio(draw) -> bytes:
    """A real encoded file with bytes overwritten or inserted, mostly in the header, maybe cut."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        position = draw(st.integers(0, min(len(data), 64) - 1) | st.integers(0, len(data) - 1))
        patch = draw(st.binary(min_size=1, max_size=4) | st.just(b"\xff\xff\xff\x7f"))
        if draw(st.booleans()):
            data[position : position + len(patch)] = patch
        else:
            data[position:position] = patch
    return bytes(data[: draw(st.integers(0, len(data)))] if draw(st.booleans()) else data)


def check_loads_or_audio_error(path: Path) -> None:
    try:
        samples = audio.load(path, 16000)
    except AudioError as exc:
        assert exc.path == str(path) and exc.problem
        return
    assert samples.dtype == np.float32 and samples.ndim == 1 and samples.size > 0
    assert np.isfinite(samples).all()


@pytest.mark.slow
@FUZZ_MANY
@given(data=st.binary(max_size=2048) | mutated_audio())
def test_any_bytes_named_wav_load_or_raise_audio_error(scratch, data):
    path = scratch / "fuzz.wav"
    path.write_bytes(data)
    check_loads_or_audio_error(path)


# --- checkpoints -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def checkpoint_bytes(scratch) -> bytes:
    path = scratch / "real.pt"
    checkpoint.save({"model": {"w": torch.randn(32, 32)}, "config": {"model": {"cell": "gru"}},
                     "labels": ["yes", "no"], "epoch": 3, "history": {"steps": [{"loss": 1.0}]}}, path)
    return path.read_bytes()


@FUZZ_MANY
@given(cut=st.floats(0, 1), flips=st.lists(st.tuples(st.floats(0, 1), st.integers(0, 255)), max_size=4))
def test_any_torn_or_corrupt_checkpoint_loads_or_raises_speechrnn_error(scratch, checkpoint_bytes, cut, flips):
    data = bytearray(checkpoint_bytes)
    for where, value in flips:
        data[int(where * (len(data) - 1))] = value
    path = scratch / "fuzz.pt"
    path.write_bytes(bytes(data[: max(1, int(cut * len(data)))]) if cut < 1 else bytes(data))
    try:
        state = checkpoint.load(path)
    except SpeechRNNError as exc:
        assert str(path) in str(exc)
        return
    assert {"model", "config", "labels"} <= state.keys()


# --- manifests ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def manifest_config(scratch):
    import soundfile as sf

    root = scratch / "root"
    (root / "yes").mkdir(parents=True)
    for i in range(3):
        sf.write(root / "yes" / f"{i}.wav", np.zeros(160, np.float32), 16000)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["recipe=smoke", "data=folder", f"data.root={root}",
                                           f"data.train_manifest={scratch / 'train.csv'}"])
    return cfg.data


CELLS = st.sampled_from(["yes/0.wav", "yes/1.wav", "missing.wav", "../../etc/passwd", "/etc/passwd",
                         "", " ", "yes", ".", "yes/0.wav\x00", '"', "path", "label"]) | st.text(max_size=12)
CSV_TEXT = st.builds(
    lambda header, rows: "\n".join([",".join(header), *(",".join(r) for r in rows)]),
    st.lists(st.sampled_from(["path", "label", "speaker", "file", "class", " Label "]) | st.text(max_size=6),
             max_size=4),
    st.lists(st.lists(CELLS, max_size=4), max_size=6),
)


@FUZZ
@given(text=CSV_TEXT | st.text(max_size=200) | st.binary(max_size=200))
def test_any_manifest_gives_splits_or_speechrnn_error(scratch, manifest_config, text):
    manifest = scratch / "train.csv"
    if isinstance(text, bytes):
        manifest.write_bytes(text)
    else:
        manifest.write_text(text, encoding="utf-8")
    root = Path(manifest_config.root)
    try:
        splits = build_splits(manifest_config)
    except SpeechRNNError:
        return
    for _, clips in splits.items():
        for clip in clips:
            assert Path(clip.path).is_relative_to(root) and Path(clip.path).is_file()


# --- config overrides --------------------------------------------------------------------------

def config_keys() -> list[str]:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("config", overrides=["recipe=smoke"])

    def walk(node, prefix=""):
        for key, value in node.items():
            yield from walk(value, f"{prefix}{key}.") if OmegaConf.is_dict(value) else [f"{prefix}{key}"]

    return sorted(walk(cfg)) + ["data", "model", "recipe", "optim", "logger", "hydra.run.dir"]


VALUES = st.sampled_from(["", "null", "true", "-1", "0.5", "1e400", "nan", "[1,2]", "{a: 1}",
                          "${data.root}", "${nope}", "${oc.env:HOME}", "'q'", "gru", "fsdd/gru", "???",
                          "${", "]", "a b"]) | st.text(max_size=12)
OVERRIDES = st.lists(
    st.builds("{}{}={}".format, st.sampled_from(["", "+", "++", "~"]),
              st.sampled_from(config_keys()) | st.from_regex(r"[a-z_.]{1,12}", fullmatch=True), VALUES)
    | st.text(max_size=20),
    max_size=3)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(overrides=OVERRIDES)
def test_any_overrides_compose_or_raise_speechrnn_error(overrides):
    try:
        cfg = compose_config(["recipe=smoke", *overrides])
    except SpeechRNNError:
        return
    OmegaConf.to_container(cfg, resolve=True)
    assert cfg.trainer.epochs is not None
