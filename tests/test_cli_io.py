"""Inputs and outputs of the inference commands: `predict -` reads a WAV from standard input,
a PATH that matches nothing is reported as such, `detect` takes several files and writes CSV."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys

import pytest

from helpers import REPO, tiny_onnx
from speechrnn import cli
from benchmarks.detection_eval import assemble
from speechrnn.detect import Settings, detect
from speechrnn.runtime import Recognizer

LABELS = ["yes", "no", "_silence_"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("model") / "model.onnx", LABELS)


@pytest.fixture(scope="module")
def clips(fsdd_root):
    return sorted(fsdd_root.glob("[12]_jackson_1*.wav"))[:3]


def run(*args, stdin=None) -> subprocess.CompletedProcess:
    """The real command in a child process (so its standard input can be a real pipe)."""
    return subprocess.run([sys.executable, "-m", "speechrnn", *map(str, args)], stdin=stdin,
                          capture_output=True, cwd=REPO, timeout=120)


@pytest.mark.slow
def test_predict_reads_a_wav_from_standard_input(model, clips):
    with open(clips[0], "rb") as wav:
        result = run("predict", model, "-", clips[1], "--format", "json", stdin=wav)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    want = Recognizer(model).predict(clips[0], top_k=3).to_dict()
    assert rows[0] == {"path": "-", **want}
    assert rows[1]["path"] == str(clips[1])
    assert "speechrnn predict: 2 files in " in result.stderr.decode()


@pytest.mark.slow
def test_predict_stdin_that_is_not_audio_is_an_error_row(model):
    result = run("predict", model, "-", "--format", "json", stdin=subprocess.DEVNULL)
    rows = json.loads(result.stdout)
    assert result.returncode == 1 and [row["path"] for row in rows] == ["-"]
    assert "not readable audio" in rows[0]["error"]
    assert b"1 could not be read" in result.stderr


def test_predict_counts_one_file_in_the_singular(model, clips, capsys):
    assert cli.main(["predict", str(model), str(clips[0])]) == 0
    err = capsys.readouterr().err
    assert "speechrnn predict: 1 file in " in err  # "1 files in" is refused here too


def test_a_path_that_matches_nothing_is_its_own_error(model, clips, tmp_path, capsys):
    pattern, missing = tmp_path / "nothing-*.wav", tmp_path / "missing.wav"
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    code = cli.main(["predict", str(model), str(clips[0]), str(pattern), str(missing),
                     str(corrupt), "--format", "json"])
    rows = {row["path"]: row for row in json.loads(capsys.readouterr().out)}
    assert code == 1
    assert rows[str(pattern)]["error"] == "no files match this pattern"
    assert rows[str(missing)]["error"] == "not found: no such file or folder"
    assert "not readable audio" in rows[str(corrupt)]["error"]
    assert rows[str(clips[0])]["label"] in LABELS
    code = cli.main(["predict", str(model), str(clips[0]), str(pattern), str(corrupt)])
    err = capsys.readouterr().err
    assert "2 files in" in err and "; 1 could not be read; 1 PATH matched nothing" in err


def test_nothing_to_classify_exits_2_naming_each_path(model, tmp_path, capsys):
    pattern, missing = tmp_path / "*.flac", tmp_path / "missing.wav"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["predict", str(model), str(pattern), str(missing)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert (f"error: nothing to classify: '{pattern}': no files match this pattern; "
            f"'{missing}': not found: no such file or folder") in err


@pytest.fixture(scope="module")
def recordings(fsdd_root, tmp_path_factory):
    """Two different recordings of spoken digits."""
    folder = tmp_path_factory.mktemp("recordings")
    files = sorted(fsdd_root.glob("[12]_*.wav"))
    paths = []
    for i, chunk in enumerate([files[:4], files[4:8]]):
        path = folder / f"recording{i}.wav"
        assemble(path, [(p, p.name[0]) for p in chunk], [], seed=i)
        paths.append(path)
    return paths


def test_detect_takes_several_files_and_names_each_events_file(model, recordings, capsys):
    settings = Settings(threshold=0.3)  # an untrained model: a low threshold, so there are events
    want = [{"path": str(path), **event.to_dict()}
            for path in recordings for event in detect(model, path, settings)]
    assert {row["path"] for row in want} == set(map(str, recordings))

    args = ["detect", str(model), *map(str, recordings), "--threshold", "0.3"]
    assert cli.main([*args, "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == want
    for path in recordings:
        count = sum(row["path"] == str(path) for row in want)
        assert f"speechrnn detect: {count} event{'' if count == 1 else 's'} in {path} (" in err

    assert cli.main([*args, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [{**row, "start": float(row["start"]), "end": float(row["end"]),
             "score": float(row["score"])} for row in rows] == want

    assert cli.main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["path", "label", "start", "end", "score"]
    assert [line.split()[:2] for line in lines[1:]] == [[r["path"], r["label"]] for r in want]


def test_detect_csv_names_the_file_even_for_one(model, recordings, capsys):
    assert cli.main(["detect", str(model), str(recordings[0]), "--threshold", "0.3",
                     "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows and {row["path"] for row in rows} == {str(recordings[0])}
    # One file in JSON keeps its plain event list.
    assert cli.main(["detect", str(model), str(recordings[0]), "--threshold", "0.3",
                     "--format", "json"]) == 0
    assert set(json.loads(capsys.readouterr().out)[0]) == {"label", "start", "end", "score"}


def test_detect_goes_on_past_an_unreadable_file_and_exits_1(model, recordings, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    second = tmp_path / "again.wav"
    shutil.copy(recordings[0], second)
    code = cli.main(["detect", str(model), str(corrupt), str(second), "--threshold", "0.3",
                     "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 1 and "Traceback" not in err
    assert f"speechrnn detect: error: {corrupt}: not readable audio" in err
    rows = json.loads(out)
    assert rows and {row["path"] for row in rows} == {str(second)}
