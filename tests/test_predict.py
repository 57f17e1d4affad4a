"""`speechrnn predict`: files, folders and globs in; a row per file out; bad files reported."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from speechrnn import checkpoint, cli
from speechrnn.runtime import Recognizer
from helpers import LABELS, tiny_model

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: torch on one thread


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A trained-run layout (checkpoint only) exported by `speechrnn export`."""
    run = tmp_path_factory.mktemp("run")
    model, cfg = tiny_model("model.cell=lstm")
    checkpoint.save({"model": model.state_dict(), "labels": LABELS, "epoch": 0,
                     "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)},
                    run / "checkpoints" / "best.pt")
    assert cli.main(["export", str(run)]) == 0
    return run / "model.onnx"


@pytest.fixture(scope="module")
def clips(fsdd_root, tmp_path_factory):
    """A folder of real recordings (one in a subfolder), a corrupt .wav and a non-audio file."""
    root = tmp_path_factory.mktemp("clips")
    sources = sorted(fsdd_root.glob("[37]_theo_4*.wav"))[:7]
    (root / "more").mkdir()
    for i, src in enumerate(sources):
        shutil.copy(src, root / ("more" if i == 0 else "") / src.name)
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    (root / "notes.txt").write_text("not audio, not listed")
    return root


def predict(capsys, *args) -> tuple[int, str, str]:
    code = cli.main(["predict", *map(str, args), "--threads", "1"])
    out, err = capsys.readouterr()
    return code, out, err


def test_json_rows_for_folders_files_globs_and_failures(model_path, clips, capsys):
    missing = clips / "missing.wav"
    code, out, err = predict(capsys, model_path, clips, clips / "more" / "*.wav", missing,
                             clips / "nothing-*.flac", "--format", "json", "--top-k", "2")
    rows = json.loads(out)
    assert code == 1 and "Traceback" not in err
    assert "could not be read" in err

    by_path = {row["path"]: row for row in rows}
    audio_files = sorted(str(p) for p in clips.rglob("*.wav") if p.name != "corrupt.wav")
    # The folder is searched recursively; the glob repeats a file, which is listed once.
    assert len(audio_files) == 7 and set(audio_files) <= by_path.keys()
    assert len(rows) == 7 + 3 and len(by_path) == len(rows)
    assert str(clips / "notes.txt") not in by_path
    assert "not readable audio" in by_path[str(clips / "corrupt.wav")]["error"]
    assert "not found" in by_path[str(missing)]["error"]
    assert "no files match" in by_path[str(clips / "nothing-*.flac")]["error"]

    recognizer = Recognizer(model_path, threads=1)
    for path in audio_files:
        row = by_path[path]
        assert set(row) == {"path", "label", "score", "top_k"}
        want = recognizer.predict(path, top_k=2)
        assert row["label"] == want.label and row["label"] in LABELS
        assert row["top_k"][0] == [row["label"], row["score"]] and len(row["top_k"]) == 2
        np.testing.assert_allclose(row["score"], want.score, atol=1e-6)


def test_batch_size_and_threads_do_not_change_results(model_path, clips, capsys):
    runs = []
    for batch_size, threads in [(1, 1), (3, 2), (64, 1)]:
        code = cli.main(["predict", str(model_path), str(clips), "--format", "json",
                         "--batch-size", str(batch_size), "--threads", str(threads)])
        runs.append(json.loads(capsys.readouterr().out))
        assert code == 1  # corrupt.wav
    for rows in runs[1:]:
        assert [r["path"] for r in rows] == [r["path"] for r in runs[0]]
        assert [r.get("label") for r in rows] == [r.get("label") for r in runs[0]]
        np.testing.assert_allclose([r.get("score", 0) for r in rows],
                                   [r.get("score", 0) for r in runs[0]], atol=1e-6)


def test_table_and_csv(model_path, clips, capsys):
    good = sorted(clips.glob("*.wav"))
    good = [p for p in good if p.name != "corrupt.wav"]
    code, out, _ = predict(capsys, model_path, *good, "--format", "csv")
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["path"] for r in rows] == [str(p) for p in good]
    for row in rows:
        top = [item.split(":") for item in row["top_k"].split(";")]
        assert row["label"] == top[0][0] and row["label"] in LABELS and not row["error"]
        assert float(row["score"]) == pytest.approx(float(top[0][1]))

    code, out, _ = predict(capsys, model_path, good[0], clips / "corrupt.wav")
    lines = out.splitlines()
    assert code == 1 and lines[0].split() == ["path", "label", "score", "top_k"]
    assert lines[1].startswith(str(good[0])) and rows[0]["label"] in lines[1].split()
    assert lines[2].startswith(str(clips / "corrupt.wav")) and "error:" in lines[2]


def test_a_bad_model_is_a_clear_error(clips, tmp_path, capsys):
    not_a_model = tmp_path / "model.onnx"
    not_a_model.write_text("nope")
    code, out, err = predict(capsys, not_a_model, clips)
    assert code == 1 and out == ""
    assert str(not_a_model) in err and "Traceback" not in err


def test_a_wav_cut_short_is_classified_with_a_warning_in_its_row(model_path, clips, tmp_path, capsys):
    whole = sorted(clips.glob("*.wav"))[0]
    data = whole.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])  # an interrupted copy: the header is the whole file's

    code, out, _ = predict(capsys, model_path, whole, cut, "--format", "json")
    rows = {row["path"]: row for row in json.loads(out)}
    assert code == 0
    assert "warning" not in rows[str(whole)]
    assert rows[str(cut)]["label"] in LABELS
    promised, held = map(int, re.match(r"cut short: its header promises (\d+) bytes of audio, "
                                       r"the file holds only (\d+)", rows[str(cut)]["warning"]).groups())
    assert promised == sf.info(whole).frames * 2 and held < len(data) // 2  # 16-bit mono

    code, out, _ = predict(capsys, model_path, whole, cut, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [bool(row["warning"]) for row in rows] == [False, True] and rows[1]["label"] in LABELS

    code, out, _ = predict(capsys, model_path, whole, cut)
    lines = out.splitlines()
    assert "warning" not in lines[1] and "  warning: cut short: " in lines[2]
