"""The model card every export carries, and `speechrnn info MODEL`, which prints it (torch-free).

``build`` is called by the exporter with the run's plain data settings and its summary.json; the card
goes into the ONNX metadata as ``model_card`` (a JSON object, export/README.md). It says what
the model was trained on, what it expects, how well it did on which test clips, and where it
is known to fall short.
"""

from __future__ import annotations

import argparse
import json
from typing import Any, Optional

from .labels import SILENCE, UNKNOWN
from .runtime import ModelInfo, open_model

KEY = "model_card"
FEW_TEST_CLIPS = 100  # below this, one clip moves the accuracy by more than a percent


def test_split(data: dict) -> str:
    """Which clips the test accuracy was measured on, in words."""
    if data.get("test_manifest"):
        return f"the clips listed in {data['test_manifest']}"
    if data.get("test_source"):
        where = f" at {data['test_root']}" if data.get("test_root") else ""
        return f"the test split of {data['test_source']}{where} (another source than training)"
    speakers = data.get("test_speakers") or []
    held_out = f", speakers {', '.join(speakers)} held out" if speakers else ""
    where = f" at {data['root']}" if data.get("root") else ""
    return f"the test split of {data['source']}{where}{held_out}"


def known_limits(data: dict, labels: list[str], accuracy: Optional[float],
                 test_clips: Optional[int], quantize: str,
                 stream_training: Optional[dict] = None,
                 members: Optional[list[dict]] = None) -> list[str]:
    if stream_training:
        limits = [f"Trained for streaming: its per-frame outputs on {stream_training['seconds']:g} s "
                  f"sequences of up to {stream_training['words']} clips at {data['sample_rate']} Hz, "
                  "a keyword expected within "
                  f"{stream_training['delay_seconds']:g} s of its end (max-pooling loss); its "
                  "--streaming export runs one state through a whole recording. Its test accuracy "
                  "counts keyword occurrences in such sequences, not clips."]
    else:
        limits = [f"Trained on {data['clip_seconds']:g} s clips at {data['sample_rate']} Hz: longer "
                  "audio is cut to its centre (`speechrnn detect` scans long recordings)."]
    others = (f"other words should come out as {UNKNOWN}" if UNKNOWN in labels
              else "any other word is forced onto one of them")
    quiet = "" if SILENCE in labels else ", and so is silence or noise"
    limits.append(f"Knows only its {len(labels)} labels; {others}{quiet}.")
    if data["source"] == "synthetic":
        tested = ("its test clips are real" if (data.get("test_source") or "synthetic") != "synthetic"
                  else "its test clips are synthetic too: accuracy on real voices is not measured")
        limits.append(f"Trained on synthetic espeak-ng voices, not recordings of people; {tested}.")
    if members:
        scored = [m["test_accuracy"] for m in members if isinstance(m["test_accuracy"], (int, float))]
        limits.append(f"An ensemble of {len(members)} runs (the mean of their probabilities), "
                      f"{len(members)} times one model's compute; the ensemble itself was not "
                      "tested" + (f", its runs scored {', '.join(f'{a:.2%}' for a in scored)} on "
                                  "their test splits." if scored else "."))
    elif accuracy is None:
        limits.append("No test accuracy was recorded (the run had no summary.json).")
    elif test_clips is not None and test_clips < FEW_TEST_CLIPS:
        limits.append(f"The test accuracy comes from {test_clips} clips only.")
    if quantize == "int8":
        limits.append("int8 weights: the test accuracy was measured with the fp32 checkpoint, "
                      "not with this file.")
    return limits


def build(data: dict, labels: list[str], summary: dict, *, quantize: str,
          stream_training: Optional[dict] = None, members: Optional[list[dict]] = None
          ) -> dict[str, Any]:
    """The card of a model exported from a run with these plain ``data`` settings and
    ``summary``, and its plain ``stream`` settings if it was trained on streams; of an ensemble,
    ``members`` are its runs (run, test_accuracy, overrides) and ``data`` the first one's."""
    clips = summary.get("clips") or {}
    accuracy = summary.get("test_accuracy")
    accuracy = float(accuracy) if isinstance(accuracy, (int, float)) else None
    training_data = {key: data.get(key) for key in
                     ("source", "root", "words", "train_manifest", "val_manifest", "noise_dir")
                     if data.get(key) not in (None, [])}
    return {
        "training_data": {**training_data, "clips": clips},
        "sample_rate": data["sample_rate"],
        "clip_seconds": data["clip_seconds"],
        "labels": list(labels),
        "test_accuracy": None if accuracy is None else {
            "value": accuracy, "split": test_split(data), "clips": clips.get("test")},
        "stream_training": stream_training,
        "limits": known_limits(data, list(labels), accuracy, clips.get("test"), quantize,
                               stream_training, members),
        "overrides": list(summary.get("overrides") or []),
        "ensemble": members,
    }


def _printable(text: Any) -> str:
    """Text from a file, safe for a terminal: control characters are shown escaped."""
    text = str(text)
    return text if text.isprintable() else ascii(text)[1:-1]


def render(info: ModelInfo) -> str:
    model = info.model
    kind = (("int8" if info.quantize == "int8" else "fp32")
            + (", streaming" if info.streaming else ", clip model"))
    layers = model.get("num_layers")
    lines = [
        f"{_printable(info.path)}: speechrnn model ({kind}), written by speechrnn "
        f"{_printable(info.version)}",
        f"input: mono audio at {info.sample_rate} Hz, trained on "
        f"{info.clip_samples / info.sample_rate:g} s clips ({info.clip_samples} samples)",
        f"labels ({len(info.labels)}): {', '.join(map(_printable, info.labels))}",
        f"model: {_printable(model.get('cell', '?'))}, hidden size {model.get('hidden_size', '?')}, "
        f"{layers} layer{'' if layers == 1 else 's'}, {_printable(model.get('pooling', '?'))} pooling"
        + (f", an ensemble of {model['ensemble']}" if model.get("ensemble") else ""),
    ]
    card = info.card
    if card is None:
        lines.append("no model card (exported before speechrnn wrote one; re-export the run "
                     "with `speechrnn export RUN_DIR` to add it)")
        if info.test_accuracy is not None:
            lines.append(f"test accuracy: {info.test_accuracy:.2%} (split not recorded)")
        return "\n".join(lines)
    data = card.get("training_data") or {}
    clips = data.get("clips") or {}
    counts = " / ".join(f"{clips[s]} {s}" for s in ("train", "val", "test") if s in clips)
    where = f" at {_printable(data['root'])}" if data.get("root") else ""
    lines.append(f"training data: {_printable(data.get('source', '?'))}{where}"
                 + (f" ({counts} clips)" if counts else ""))
    stream = card.get("stream_training")
    if stream:
        lines.append(f"trained for streaming: {stream['seconds']:g} s sequences of up to "
                     f"{stream['words']} clips, max-pooling loss, keyword within "
                     f"{stream['delay_seconds']:g} s of its end; detect never restarts its state")
    if card.get("overrides"):
        lines.append(f"trained with: speechrnn train {' '.join(map(_printable, card['overrides']))}")
    accuracy = card.get("test_accuracy")
    if accuracy:
        lines.append(f"test accuracy: {accuracy['value']:.2%} on {_printable(accuracy['split'])}"
                     + (f", {accuracy['clips']} clips" if accuracy.get("clips") else ""))
    else:
        lines.append("test accuracy: not recorded")
    lines.append("known limits:")
    lines += [f"  - {_printable(limit)}" for limit in card.get("limits") or []]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="speechrnn info",
        description="Show what an exported model is: its input, labels, training data, test "
        "accuracy and known limits (the model card in its metadata).")
    parser.add_argument("model", help="an .onnx file written by `speechrnn export`")
    parser.add_argument("--format", choices=("text", "json"), default="text")
    args = parser.parse_args(argv)
    _, info = open_model(args.model, threads=1)
    if args.format == "json":
        fields = {name: getattr(info, name) for name in info.__dataclass_fields__}
        print(json.dumps({**fields, "path": str(info.path)}, indent=2))
    else:
        print(render(info))
    return 0
