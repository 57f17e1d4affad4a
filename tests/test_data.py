"""Data sources, splits, datasets and loaders on real recordings (FSDD digits, Speech Commands
noise) laid out as each source expects in tmp_path."""

from __future__ import annotations

import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from omegaconf import OmegaConf

from speechrnn import audio
from speechrnn.config import AugmentConfig, Config, DataConfig
from speechrnn.data import (SILENCE, UNKNOWN, Splits, build_datasets, build_splits, make_loader,
                            speech_commands)
from speechrnn.data.folder import speaker_of
from speechrnn.errors import SpeechRNNError, UsageError

DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
SPEAKERS = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]


def speech_commands_tree(dest: Path, fsdd_root: Path, noise_root: Path, takes: int = 8) -> Path:
    """FSDD digits as a Speech Commands corpus: <word>/<speaker><take>_nohash_0.wav, so each
    (speaker, take) is one of 48 'speakers' who said every word; the real noise beside them."""
    for digit, word in enumerate(DIGIT_WORDS):
        (dest / word).mkdir(parents=True)
        for speaker in SPEAKERS:
            for take in range(takes):
                shutil.copy(fsdd_root / f"{digit}_{speaker}_{take}.wav",
                            dest / word / f"{speaker}{take}_nohash_0.wav")
    os.symlink(noise_root, dest / speech_commands.NOISE_DIR)
    return dest


@pytest.fixture(scope="module")
def sc_root(tmp_path_factory, fsdd_root, noise_root) -> Path:
    return speech_commands_tree(tmp_path_factory.mktemp("sc"), fsdd_root, noise_root)


def sc_config(root: Path, **overrides) -> DataConfig:
    settings = dict(source="speech_commands", root=str(root), words=["zero", "one", "two"],
                    val_fraction=0.2, test_fraction=0.2)
    return DataConfig(**{**settings, **overrides})


def paths(clips) -> set[str]:
    return {c.path for c in clips}


# ---------------------------------------------------------------- Speech Commands


def test_which_set_keeps_a_speaker_together_and_matches_the_percentages():
    names = [f"{i:08x}_nohash_{n}.wav" for i in range(3000) for n in range(2)]
    sets = [speech_commands.which_set(f"word/{name}", 10.0, 20.0) for name in names]
    assert sets[0::2] == sets[1::2]  # the _nohash_ suffix does not matter
    counts = Counter(sets[0::2])
    assert counts["val"] / 3000 == pytest.approx(0.1, abs=0.02)
    assert counts["test"] / 3000 == pytest.approx(0.2, abs=0.02)


def test_twelve_class_task(sc_root, noise_root):
    cfg = sc_config(sc_root)
    splits = build_splits(cfg)
    assert splits.labels == ["zero", "one", "two", SILENCE, UNKNOWN]
    assert splits.noise_dir == str(sc_root / speech_commands.NOISE_DIR)
    speakers = {}
    for split, clips in splits.items():
        counts = Counter(c.label for c in clips)
        assert counts["zero"] > 0 and counts["one"] > 0 and counts["two"] > 0
        for label, fraction in ((UNKNOWN, cfg.unknown_fraction), (SILENCE, cfg.silence_fraction)):
            assert abs(counts[label] - fraction * len(clips)) <= 1
        for clip in clips:
            if clip.label == UNKNOWN:
                assert Path(clip.path).parent.name not in cfg.words
            elif clip.label != SILENCE:
                assert Path(clip.path).parent.name == clip.label
                speakers.setdefault(clip.speaker, set()).add(split)
    assert len(speakers) >= 6  # a speaker stays in one split
    assert all(len(found) == 1 for found in speakers.values())
    assert build_splits(cfg) == splits


def test_a_training_unknown_share_of_its_own_leaves_validation_and_test_as_they_were(sc_root):
    plain = build_splits(sc_config(sc_root))
    more = build_splits(sc_config(sc_root, train_unknown_fraction=0.4))
    assert more.val == plain.val and more.test == plain.test
    counts = Counter(c.label for c in more.train)
    assert abs(counts[UNKNOWN] - 0.4 * len(more.train)) <= 1
    assert abs(counts[SILENCE] - 0.1 * len(more.train)) <= 1
    commands = [c for c in more.train if c.label not in (UNKNOWN, SILENCE)]
    assert commands == [c for c in plain.train if c.label not in (UNKNOWN, SILENCE)]
    assert paths(c for c in plain.train if c.label == UNKNOWN) < paths(
        c for c in more.train if c.label == UNKNOWN)
    with pytest.raises(SpeechRNNError,
                       match="data.silence_fraction \\+ data.train_unknown_fraction"):
        build_splits(sc_config(sc_root, train_unknown_fraction=0.9))


def test_silence_clips_are_cuts_of_the_noise_files(sc_root):
    splits = build_splits(sc_config(sc_root))
    cuts = set()
    for split, clips in splits.items():
        for clip in (c for c in clips if c.label == SILENCE):
            assert Path(clip.path).parent == sc_root / speech_commands.NOISE_DIR
            assert clip.frames == 16000 and clip.start + clip.frames <= sf.info(clip.path).frames
            cuts.add((clip.path, clip.start))
    assert len({path for path, _ in cuts}) > 1 and len(cuts) > 6
    dataset = build_datasets(sc_config(sc_root), AugmentConfig(), splits)["val"]
    i = next(i for i, c in enumerate(dataset.clips) if c.label == SILENCE)
    clip = dataset.clips[i]
    expected, _ = sf.read(clip.path, start=clip.start, frames=clip.frames, dtype="float32")
    waveform, label = dataset[i]
    np.testing.assert_array_equal(waveform.numpy(), expected)
    assert dataset.labels[label] == SILENCE


def test_every_word_a_class_without_words(sc_root):
    splits = build_splits(sc_config(sc_root, words=[], silence=False))
    assert splits.labels == sorted(DIGIT_WORDS)
    assert sum(len(c) for _, c in splits.items()) == 10 * 48


def test_shipped_lists_decide_the_split_and_missing_entries_are_counted(
        tmp_path, fsdd_root, noise_root, caplog):
    root = speech_commands_tree(tmp_path, fsdd_root, noise_root, takes=2)
    val = ["one/george0_nohash_0.wav", "two/theo1_nohash_0.wav"]
    test = ["zero/lucas0_nohash_0.wav", "five/lucas0_nohash_0.wav"]
    (root / "validation_list.txt").write_text("\n".join(val + ["one/gone_nohash_0.wav"]) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test + ["six/gone_nohash_1.wav"]) + "\n")
    cfg = sc_config(root, words=[], silence=False)
    with caplog.at_level(logging.WARNING):
        splits = build_splits(cfg)
    assert paths(splits.val) == {str(root / p) for p in val}
    assert paths(splits.test) == {str(root / p) for p in test}
    assert len(splits.train) == 10 * 12 - 4
    assert "skipped 1 listed files" in caplog.text and "validation_list.txt" in caplog.text
    assert "testing_list.txt" in caplog.text
    with pytest.raises(SpeechRNNError, match="missing"):
        build_splits(sc_config(root, words=[], silence=False, on_bad_file="error"))


def test_speech_commands_errors(sc_root, tmp_path):
    with pytest.raises(SpeechRNNError, match="data.words lists \\['dog'\\]"):
        build_splits(sc_config(sc_root, words=["zero", "dog"]))
    no_noise = tmp_path / "no_noise"
    shutil.copytree(sc_root / "zero", no_noise / "zero")
    with pytest.raises(SpeechRNNError, match="data.silence=false"):
        build_splits(sc_config(no_noise, words=["zero"]))
    assert build_splits(sc_config(no_noise, words=["zero"], silence=False)).noise_dir is None


@pytest.mark.parametrize("source", ["speech_commands", "fsdd", "folder"])
def test_missing_or_empty_root_names_the_path_and_the_fix(tmp_path, source):
    with pytest.raises(SpeechRNNError, match="data.root is not set"):
        build_splits(DataConfig(source=source, root=None))
    missing_cfg = OmegaConf.merge(OmegaConf.structured(DataConfig), {"source": source, "root": "???"})
    with pytest.raises(SpeechRNNError, match="data.root=<folder>"):
        build_splits(missing_cfg)
    missing = tmp_path / "nowhere"
    with pytest.raises(SpeechRNNError, match=f"{missing}: data.root does not exist"):
        build_splits(DataConfig(source=source, root=str(missing)))
    assert not missing.exists()  # nothing downloaded or created unasked
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpeechRNNError, match="data.root is empty"):
        build_splits(DataConfig(source=source, root=str(tmp_path / "empty")))


def test_synthetic_set_reads_as_speech_commands(tiny_synth):
    cfg = DataConfig(source="synthetic", root=str(tiny_synth), words=["yes", "no", "up"])
    splits = build_splits(cfg)
    assert splits.labels == ["yes", "no", "up", SILENCE, UNKNOWN]
    assert splits.noise_dir == str(tiny_synth / speech_commands.NOISE_DIR)
    listed = (tiny_synth / "testing_list.txt").read_text().split()
    assert paths(c for c in splits.test if c.label != SILENCE) <= {str(tiny_synth / p) for p in listed}
    unknown = [c for _, clips in splits.items() for c in clips if c.label == UNKNOWN]
    assert unknown and {Path(c.path).parent.name for c in unknown} <= {"cat", "tree"}
    dataset = build_datasets(cfg, AugmentConfig(), splits)["train"]
    waveform, label = dataset[0]
    assert waveform.shape == (16000,) and 0 <= label < len(splits.labels)


# ---------------------------------------------------------------- FSDD


def test_fsdd_official_split(fsdd_root):
    cfg = DataConfig(source="fsdd", root=str(fsdd_root), silence=False, unknown=False)
    splits = build_splits(cfg)
    assert splits.labels == [str(d) for d in range(10)]
    assert len(splits.train) + len(splits.val) == 2700 and len(splits.test) == 300
    assert len(splits.val) / 2700 == pytest.approx(cfg.val_fraction, abs=0.02)
    assert all(int(Path(c.path).stem.split("_")[2]) < 5 for c in splits.test)
    assert not paths(splits.train) & paths(splits.val)
    for clip in splits.train + splits.val + splits.test:
        digit, speaker, _ = Path(clip.path).stem.split("_")
        assert (clip.label, clip.speaker) == (digit, speaker)
    assert build_splits(cfg) == splits


def test_fsdd_held_out_speaker(fsdd_root):
    splits = build_splits(DataConfig(source="fsdd", root=str(fsdd_root), silence=False,
                                      test_speakers=["george"]))
    assert len(splits.test) == 500 and {c.speaker for c in splits.test} == {"george"}
    assert "george" not in {c.speaker for c in splits.train + splits.val}
    assert len(splits.train) + len(splits.val) == 2500
    with pytest.raises(SpeechRNNError, match="bob"):
        build_splits(DataConfig(source="fsdd", root=str(fsdd_root), silence=False,
                                test_speakers=["bob"]))


def test_mixed_source_adds_synthetic_voices_to_training_only(fsdd_root):
    real = build_splits(DataConfig(source="fsdd", root=str(fsdd_root), silence=False,
                                   test_speakers=["george"]))
    mixed_cfg = DataConfig(source="fsdd", root=str(fsdd_root), silence=False, test_speakers=["george"],
                           mix_synthetic={"3": "three", "7": "seven"})
    mixed_cfg.synth.per_word = 4
    mixed = build_splits(mixed_cfg)
    assert (mixed.val, mixed.test, mixed.labels) == (real.val, real.test, real.labels)
    added = mixed.train[len(real.train):]
    assert mixed.train[: len(real.train)] == real.train
    assert Counter(c.label for c in added) == {"3": 4, "7": 4}
    assert all(Path(c.path).parent.name == {"3": "three", "7": "seven"}[c.label] for c in added)
    assert {c.speaker for c in added}.isdisjoint(c.speaker for c in real.train)
    mixed_cfg.mix_synthetic = {"ten": "ten"}
    with pytest.raises(SpeechRNNError, match=r"data.mix_synthetic names labels \['ten'\]"):
        build_splits(mixed_cfg)


def test_fsdd_silence_class_is_cut_from_data_noise_dir(fsdd_root, noise_root):
    cfg = DataConfig(source="fsdd", root=str(fsdd_root), silence=True, noise_dir=str(noise_root))
    splits = build_splits(cfg)
    assert splits.labels == [str(d) for d in range(10)] + [SILENCE]
    assert splits.noise_dir == str(noise_root)  # noise augmentation draws from it too
    for split, clips in splits.items():
        silence = [c for c in clips if c.label == SILENCE]
        assert len(silence) / len(clips) == pytest.approx(cfg.silence_fraction, abs=0.005), split
        assert {Path(c.path).parent for c in silence} == {noise_root}
        assert all(c.start + c.frames <= sf.info(c.path).frames for c in silence)
    digits = build_splits(DataConfig(source="fsdd", root=str(fsdd_root), silence=False))
    for (_, with_silence), (_, plain) in zip(splits.items(), digits.items()):
        assert [c for c in with_silence if c.label != SILENCE] == plain
    assert build_splits(cfg) == splits
    dataset = build_datasets(cfg, AugmentConfig(), splits)["test"]
    waveform, label = dataset[len(dataset) - 1]
    clip = dataset.clips[-1]
    expected, rate = sf.read(clip.path, start=clip.start, frames=clip.frames, dtype="float32")
    assert dataset.labels[label] == SILENCE
    np.testing.assert_allclose(waveform.numpy(), audio.resample(expected, rate, 16000), atol=1e-6)


def test_fsdd_silence_needs_a_noise_folder(fsdd_root, tmp_path):
    with pytest.raises(SpeechRNNError, match="needs data.noise_dir.*data.silence=false"):
        build_splits(DataConfig(source="fsdd", root=str(fsdd_root), silence=True))
    missing = tmp_path / "no_such_folder"
    with pytest.raises(SpeechRNNError, match=f"{missing}.*data.noise_dir.*data.silence=false"):
        build_splits(DataConfig(source="fsdd", root=str(fsdd_root), silence=True,
                                noise_dir=str(missing)))
    with pytest.raises(SpeechRNNError, match="silence_fraction"):
        build_splits(DataConfig(source="fsdd", root=str(fsdd_root), silence=True,
                                noise_dir=str(tmp_path), silence_fraction=1.0))


def test_speech_commands_silence_from_data_noise_dir(sc_root, tmp_path, noise_root):
    shutil.copy(noise_root / "white_noise.wav", tmp_path / "white_noise.wav")
    splits = build_splits(sc_config(sc_root, noise_dir=str(tmp_path)))
    silence = [c for _, clips in splits.items() for c in clips if c.label == SILENCE]
    assert silence and {c.path for c in silence} == {str(tmp_path / "white_noise.wav")}


def test_a_clip_length_of_zero_is_refused_naming_the_setting(fsdd_root, noise_root):
    """Not a noise file blamed later for the empty silence clips cut from it."""
    with pytest.raises(UsageError, match=r"^data.clip_seconds=0 is out of range; set it to a value "
                                         r"in \(0, 60\]$"):
        build_splits(DataConfig(source="fsdd", root=str(fsdd_root), silence=True,
                                noise_dir=str(noise_root), clip_seconds=0))


# ---------------------------------------------------------------- folder and manifests


@pytest.fixture(scope="module")
def folder_root(tmp_path_factory, fsdd_root) -> Path:
    """Three labels: FSDD-style names (one label in nested folders) and Speech Commands names."""
    root = tmp_path_factory.mktemp("keywords")
    for digit, word in enumerate(["zero", "one", "two"]):
        for speaker in SPEAKERS:
            for take in range(6):
                if word == "two":
                    dest = root / word / f"{speaker}{take}_nohash_0.wav"
                else:
                    dest = root / word / f"session{take % 2}" / f"{word}_{speaker}_{take}.wav"
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(fsdd_root / f"{digit}_{speaker}_{take}.wav", dest)
    (root / "notes.txt").write_text("not audio")
    (root / "zero" / "._zero_theo_9.wav").write_bytes(b"\0" * 64)  # a macOS resource fork
    return root


def test_speaker_rule():
    assert speaker_of("a/0a7c2a8d_nohash_3.wav", "yes") == "0a7c2a8d"
    assert speaker_of("7_jackson_32.wav", "7") == "jackson"
    assert speaker_of("on_mary_ann_2.flac", "on") == "mary_ann"
    assert speaker_of("recording_2.wav", "on") == ""
    assert speaker_of("on_take.wav", "on") == ""


def test_folder_split_keeps_speakers_together(folder_root):
    cfg = DataConfig(source="folder", root=str(folder_root), val_fraction=0.25, test_fraction=0.25)
    splits = build_splits(cfg)
    assert splits.labels == ["one", "two", "zero"]
    assert sum(len(c) for _, c in splits.items()) == 3 * 6 * 6
    owner = {}
    for split, clips in splits.items():
        assert clips
        for clip in clips:
            assert owner.setdefault(clip.speaker or clip.path, split) == split
    assert {c.speaker for c in splits.train if c.label == "zero"} <= set(SPEAKERS)
    assert build_splits(cfg) == splits

    held = build_splits(DataConfig(source="folder", root=str(folder_root), test_speakers=["theo"]))
    assert {c.speaker for c in held.test} == {"theo"} and len(held.test) == 2 * 6


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_manifests(tmp_path, folder_root, caplog):
    files = sorted(p.relative_to(folder_root).as_posix() for p in folder_root.rglob("*.wav"))
    label = lambda rel: rel.split("/")[0]  # noqa: E731
    train_files, val_files, test_files = files[0::3], files[1::3], files[2::3]  # every label in each
    train = write_csv(tmp_path / "train.csv", "path,label",
                      [f"{f},{label(f)}" for f in train_files] + ["zero/gone.wav,zero"])
    val = write_csv(tmp_path / "val.csv", "File,Class", [f"{f},{label(f)}" for f in val_files])
    test = write_csv(tmp_path / "test.csv", "path,label,speaker",
                     [f"{f},{label(f)},somebody" for f in test_files])
    cfg = DataConfig(source="folder", root=str(folder_root), train_manifest=str(train),
                     val_manifest=str(val), test_manifest=str(test))
    with caplog.at_level(logging.WARNING):
        splits = build_splits(cfg)
    assert "skipped 1 listed files" in caplog.text and "train.csv" in caplog.text
    assert paths(splits.train) == {str(folder_root / f) for f in train_files}
    assert len(splits.val) == len(val_files) and len(splits.test) == len(test_files)
    assert {c.speaker for c in splits.test} == {"somebody"}
    assert splits.labels == ["one", "two", "zero"]

    only_train = build_splits(DataConfig(source="folder", root=str(folder_root),
                                         train_manifest=str(train)))
    assert sum(len(c) for _, c in only_train.items()) == len(train_files) and only_train.val


def test_manifest_errors(tmp_path, folder_root):
    def build(manifest: Path):
        return build_splits(DataConfig(source="folder", root=str(folder_root),
                                       train_manifest=str(manifest)))

    escape = write_csv(tmp_path / "escape.csv", "path,label",
                       ["zero/session0/zero_theo_0.wav,zero", "../../etc/passwd,zero"])
    with pytest.raises(SpeechRNNError, match=r"escape.csv, line 3: '../../etc/passwd' lies outside"):
        build(escape)
    absolute = write_csv(tmp_path / "absolute.csv", "path,label", ["/etc/passwd,zero"])
    with pytest.raises(SpeechRNNError, match="line 2"):
        build(absolute)
    odd = write_csv(tmp_path / "odd.csv", "filename,word", ["zero/x.wav,zero"])
    with pytest.raises(SpeechRNNError, match=r"odd.csv: header \['filename', 'word'\] lacks"):
        build(odd)
    with pytest.raises(SpeechRNNError, match="nope.csv: cannot open"):
        build(tmp_path / "nope.csv")


def manifest_config(folder_root: Path, **manifests: Path) -> DataConfig:
    return DataConfig(source="folder", root=str(folder_root),
                      **{f"{split}_manifest": str(path) for split, path in manifests.items()})


def manifest_rows(folder_root: Path, *labels: str) -> list[str]:
    """"path,label" rows of every file of those labels."""
    return [f"{p.relative_to(folder_root).as_posix()},{label}" for label in labels
            for p in sorted((folder_root / label).rglob("*.wav"))]


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_label_with_no_training_clips_is_refused(tmp_path, folder_root, split):
    train = write_csv(tmp_path / "train.csv", "path,label", manifest_rows(folder_root, "one", "two"))
    other = write_csv(tmp_path / f"{split}.csv", "path,label", manifest_rows(folder_root, "zero"))
    with pytest.raises(SpeechRNNError) as caught:
        build_splits(manifest_config(folder_root, train=train, **{split: other}))
    assert str(caught.value).startswith(f"{other}: label 'zero' has {split} clips but no training "
                                        f"clips, so the model could never predict it; add training "
                                        f"clips of it to {train}")


def test_a_file_under_two_labels_is_refused(tmp_path, folder_root):
    rows = manifest_rows(folder_root, "zero", "one")
    relabelled = rows[0].replace(",zero", ",one")
    train = write_csv(tmp_path / "train.csv", "path,label", rows + [relabelled])
    with pytest.raises(SpeechRNNError) as caught:
        build_splits(manifest_config(folder_root, train=train))
    path = rows[0].split(",")[0]
    assert str(caught.value) == (f"{train}, line {len(rows) + 2}: {path!r} is labelled 'one' here "
                                 "and 'zero' on line 2; a file has one label: fix or delete one "
                                 "of the lines")


def test_repeated_rows_are_dropped_with_a_warning(tmp_path, folder_root, caplog):
    rows = manifest_rows(folder_root, "zero", "one")
    train = write_csv(tmp_path / "train.csv", "path,label", rows + rows[:3])
    with caplog.at_level(logging.WARNING):
        splits = build_splits(manifest_config(folder_root, train=train))
    assert f"{train}: dropped 3 rows that repeat an earlier row (first: line {len(rows) + 2})" \
        in caplog.text
    listed = [c.path for _, clips in splits.items() for c in clips]
    assert sorted(listed) == sorted({str(folder_root / r.split(",")[0]) for r in rows})


@pytest.mark.parametrize("split", ["val", "test"])
def test_a_file_in_two_splits_is_refused(tmp_path, folder_root, split):
    rows = manifest_rows(folder_root, "zero", "one")
    train = write_csv(tmp_path / "train.csv", "path,label", rows)
    for other, listed in [(train, rows),  # the same manifest for both
                          (write_csv(tmp_path / "other.csv", "path,label", rows[-1:]), rows[-1:])]:
        with pytest.raises(SpeechRNNError) as caught:
            build_splits(manifest_config(folder_root, train=train, **{split: other}))
        path = folder_root / listed[0].split(",")[0]
        assert str(caught.value) == (f"{path} is listed in data.train_manifest ({train}) and in "
                                     f"data.{split}_manifest ({other}); the {split} split must "
                                     "not hold train clips: list each file in one manifest")


def test_a_manifest_with_a_byte_order_mark_is_read(tmp_path, folder_root):
    """Excel's "CSV UTF-8" starts the file with a BOM, which is not part of the header."""
    train = tmp_path / "train.csv"
    train.write_text("\n".join(["path,label", *manifest_rows(folder_root, "zero", "one")]),
                     encoding="utf-8-sig")
    assert train.read_bytes().startswith(b"\xef\xbb\xbfpath,label")
    splits = build_splits(manifest_config(folder_root, train=train))
    assert splits.labels == ["one", "zero"]


# ---------------------------------------------------------------- datasets and loaders


@pytest.fixture(scope="module")
def small_fsdd(fsdd_root, noise_root):
    """A config with augmentation (real noise) and a 48/17/16-clip slice of FSDD."""
    cfg = Config()
    cfg.data = DataConfig(source="fsdd", root=str(fsdd_root), silence=False, unknown=False)
    cfg.augment.noise_dir = str(noise_root)
    full = build_splits(cfg.data)
    return cfg, Splits(full.labels, full.train[::50][:48], full.val[::16], full.test[::19])


def batches(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


def test_loader_batches_shapes_and_dtypes(small_fsdd):
    cfg, splits = small_fsdd
    datasets = build_datasets(cfg.data, cfg.augment, splits)
    x, y = next(iter(make_loader(datasets["train"], 16, shuffle=True, num_workers=0, seed=0)))
    assert x.shape == (16, 16000) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and 0 <= int(y.min()) and int(y.max()) < 10


def test_augmentation_is_off_for_val_and_test(small_fsdd):
    cfg, splits = small_fsdd
    datasets = build_datasets(cfg.data, cfg.augment, splits)
    assert datasets["train"].transform is not None
    for split in ("val", "test"):
        assert datasets[split].transform is None
        clip = datasets[split].clips[0]
        waveform, label = datasets[split][0]
        # Equal up to the decode cache's int16 rounding (FSDD is resampled from 8 kHz).
        np.testing.assert_allclose(waveform.numpy(), audio.load(clip.path, 16000, 16000),
                                   rtol=0, atol=0.5 / 32768)
        assert datasets[split].labels[label] == clip.label
    plain = audio.load(splits.train[0].path, 16000, 16000)
    assert not np.array_equal(datasets["train"][0][0].numpy(), plain)


@pytest.mark.slow
def test_batches_depend_on_seed_and_epoch_not_on_workers(small_fsdd):
    cfg, splits = small_fsdd

    def run(workers: int, seed: int) -> list:
        dataset = build_datasets(cfg.data, cfg.augment, splits, seed=seed)["train"]
        loader = make_loader(dataset, 16, shuffle=True, num_workers=workers, seed=seed)
        epochs = []
        for epoch in range(2):
            dataset.set_epoch(epoch)  # persistent workers must see it
            epochs.append(batches(loader))
        return epochs

    serial, parallel = run(0, seed=1), run(2, seed=1)
    assert len(serial) == len(parallel) == 2
    assert [len(a) for a in serial] == [len(b) for b in parallel] and len(serial[0]) > 1
    for a, b in zip(serial, parallel):
        for (xa, ya), (xb, yb) in zip(a, b):
            assert torch.equal(xa, xb) and torch.equal(ya, yb)
    assert not torch.equal(serial[0][0][0], run(0, seed=2)[0][0][0])
    dataset = build_datasets(cfg.data, cfg.augment, splits, seed=1)["train"]
    first = dataset[0][0]
    dataset.set_epoch(1)
    assert not torch.equal(first, dataset[0][0])  # a new epoch, new draws


def test_loader_with_a_sampler_does_not_shuffle(small_fsdd):
    cfg, splits = small_fsdd
    dataset = build_datasets(cfg.data, cfg.augment, splits)["val"]
    sampler = torch.utils.data.SequentialSampler(dataset)
    loader = make_loader(dataset, 8, shuffle=True, num_workers=0, seed=0, sampler=sampler)
    labels = torch.cat([y for _, y in loader]).tolist()
    assert labels == [dataset.index[c.label] for c in dataset.clips]
