"""torch -> ONNX: one file, raw audio in, logits and probabilities out, everything else in metadata.

``speechrnn export RUN_DIR|CHECKPOINT [-o model.onnx] [--quantize int8] [--streaming]``, and
``export_run`` for the trainer; ``speechrnn export RUN RUN ... -o FILE.onnx`` writes several runs
of one recipe as one ensemble (speechrnn/ensemble.py). The contract (inputs, outputs, metadata
keys, the streaming state) is written down in ``export/README.md``; ``speechrnn.runtime`` is its
reader.

We use the TorchScript exporter (``dynamo=False``): the dynamo exporter needs ``onnxscript``,
which is not a dependency (with torch 2.14.1, ``dynamo=True`` stops at its import). Every recurrent layer is
exported as the native ONNX RNN/GRU/LSTM op. int8: onnxruntime's dynamic quantisation for
MatMul/Conv/LSTM, and int8 storage for GRU/RNN weights, which it has no kernel for.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import numpy as np
import onnx
import onnxruntime as ort
from onnx import numpy_helper
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import __version__, checkpoint
from . import card as model_card
from .config import ExportConfig, Quantize, plain
from .ensemble import Ensemble
from .errors import SpeechRNNError, UsageError
from .models import RecurrentEncoder
from .runtime import FORMAT, FORMAT_KEY

log = logging.getLogger(__name__)

# Parity a fresh export must reach against PyTorch before it is written (fp32 only).
VERIFY_ATOL = 1e-3


# --------------------------------------------------------------------------- recurrent layers

def _export_rnn(encoder: nn.Module) -> nn.Module:
    """The recurrent layer to put in the graph: torch's own module, exported as the native ONNX
    op (a ``ReferenceRNN`` is swapped for it, same weights)."""
    rnn = encoder.rnn
    if not isinstance(rnn, nn.RNNBase):
        args = dict(input_size=rnn.input_size, hidden_size=rnn.hidden_size,
                    num_layers=rnn.num_layers, bidirectional=rnn.bidirectional, batch_first=True)
        if encoder.cell == "rnn":
            args["nonlinearity"] = encoder.nonlinearity
        native = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[encoder.cell](**args)
        native.load_state_dict(rnn.state_dict())
        rnn = native
    return rnn


# --------------------------------------------------------------------------- graphs

class OfflineGraph(nn.Module):
    """``audio`` [B, S] -> ``logits``, ``probs`` [B, labels]: the whole classifier."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, audio: Tensor) -> tuple[Tensor, Tensor]:
        logits = self.model(audio)
        return logits, torch.softmax(logits, dim=-1)


def check_streamable(model: nn.Module) -> None:
    """Refuse, with the fix, what a chunk-by-chunk model cannot reproduce exactly."""
    if isinstance(model, Ensemble):
        raise UsageError("cannot export an ensemble for streaming: export its runs one by one "
                         "with --streaming, or the ensemble without it")
    problems = []
    if model.encoder.bidirectional:
        problems.append("the encoder is bidirectional (it reads each clip backwards from its "
                        "end); train with model.bidirectional=false")
    if model.frontend.normalize:
        problems.append("features.normalize=true uses statistics of the whole utterance; train with features.normalize=false (model.input_norm=true "
                        "normalises each frame instead)")
    if model.frontend.deltas is not None:
        problems.append("features.deltas>0 look ahead of the current frame; train with "
                        "features.deltas=0")
    if problems:
        raise SpeechRNNError("cannot export a streaming model: " + "; ".join(problems))


class StreamingGraph(nn.Module):
    """One chunk of a stream in, its frames' outputs and the next state out.

    The offline frontend reflect-pads ``pad_left`` samples before the clip and frames the padded
    signal with windows of ``win_length`` every ``hop_length``. Here the padded stream is cut
    into chunks of k * hop samples; ``context`` keeps the ``context_samples`` stream samples
    not yet fully framed, so each chunk yields exactly k frames. On the first call (``offset``
    0) the graph builds the context itself, the reflection of the chunk's start behind
    ``delay_frames`` * hop placeholder samples, and drops the frames those would give: the
    first call yields k - delay_frames frames, every later one k. The causal convs keep their
    last inputs and the recurrent layers their states, all zeros at the start, exactly the
    offline model's left padding and initial state.
    """

    def __init__(self, model: nn.Module, rnn: nn.Module):
        super().__init__()
        mfcc = model.frontend.mfcc
        self.hop = mfcc.hop_length
        self.trim = (mfcc.trim_left, mfcc.trim_right)
        self.pad_left = mfcc.n_fft // 2 - mfcc.trim_left
        self.pad_right = mfcc.n_fft // 2 - mfcc.trim_right
        # Frames stay ``delay_frames`` behind the samples: each needs win_length/2 to its right.
        self.delay_frames = -((self.pad_left - mfcc.win_length) // self.hop + 1)
        self.context_samples = self.pad_left + self.delay_frames * self.hop
        # The same MFCC, framing its input as is: the graph does the padding.
        self.frontend = copy.deepcopy(mfcc)
        self.frontend.center = False
        self.input_norm = model.encoder.input_norm
        self.convs = nn.ModuleList(model.encoder.convs)
        self.rnn = rnn
        self.head = model.head
        self.lstm = model.encoder.cell == "lstm"
        self.state_shapes = self._state_shapes()

    @property
    def min_first_chunk(self) -> int:
        """The first chunk must hold the samples its reflection needs and give one frame."""
        needed = max(self.pad_left + 1, (self.delay_frames + 1) * self.hop)
        return -(-needed // self.hop) * self.hop

    def _state_shapes(self) -> dict[str, list]:
        layers, hidden = self.rnn.num_layers, self.rnn.hidden_size
        shapes = {"context": ["batch", self.context_samples], "offset": [1]}
        for i, conv in enumerate(self.convs):
            shapes[f"conv{i}"] = ["batch", conv.conv.in_channels, conv.kernel_size - 1]
        shapes["h"] = [layers, "batch", hidden]
        if self.lstm:
            shapes["c"] = [layers, "batch", hidden]
        return shapes

    def forward(self, audio: Tensor, context: Tensor, offset: Tensor, *states: Tensor):
        first = offset == 0
        # Computed on every call (ONNX has no cheap branch), so it must fit any chunk length.
        reflection = F.pad(audio, (0, self.pad_left))[:, 1 : self.pad_left + 1].flip(-1)
        start_context = F.pad(reflection, (self.context_samples - self.pad_left, 0))
        stream = torch.cat([torch.where(first, start_context, context), audio], dim=-1)
        feats = self.frontend(F.pad(stream, self.trim))  # [B, k, n_mfcc]
        feats = feats[:, (first.long() * self.delay_frames).squeeze(0):]
        next_context = stream[:, stream.shape[-1] - self.context_samples:]

        x = self.input_norm(feats).transpose(1, 2)  # [B, C, frames]
        conv_states = []
        for conv, state in zip(self.convs, states):
            x = torch.cat([state, x], dim=-1)
            conv_states.append(x[..., x.shape[-1] - (conv.kernel_size - 1):])
            x = torch.relu(conv.conv(x))
        recurrent = states[len(self.convs):]
        hx = (recurrent[0], recurrent[1]) if self.lstm else recurrent[0]
        frames, final = self.rnn(x.transpose(1, 2), hx)
        finals = list(final) if self.lstm else [final]
        logits = self.head(frames)
        return (logits, torch.softmax(logits, dim=-1), frames, next_context,
                offset + frames.shape[1], *conv_states, *finals)


# --------------------------------------------------------------------------- export

def metadata(model: nn.Module, data: dict, *, quantize: str, streaming: Optional[StreamingGraph],
             summary: dict, stream_training: Optional[dict] = None,
             members: Optional[list[dict]] = None) -> dict[str, str]:
    """The metadata_props every exported file carries (export/README.md); ``data`` is the run's
    data settings, ``summary`` its summary.json (empty for a model that was never tested),
    ``stream_training`` its stream settings when it was trained on streams (else None) and
    ``members`` an ensemble's runs (``ensemble_members``)."""
    card = model_card.build(data, list(model.labels), summary, quantize=quantize,
                            stream_training=stream_training, members=members)
    test_accuracy = (card["test_accuracy"] or {}).get("value")
    meta = {
        FORMAT_KEY: str(FORMAT),
        "speechrnn_version": __version__,
        "labels": json.dumps(list(model.labels)),
        "sample_rate": str(model.sample_rate),
        "clip_samples": str(model.clip_samples),
        "features": json.dumps(model.settings["features"]),
        "model": json.dumps(model.settings["model"]),
        "test_accuracy": json.dumps(test_accuracy),
        "quantize": quantize,
        "streaming": json.dumps(streaming is not None),
        "stream_training": json.dumps(stream_training),
        model_card.KEY: json.dumps(card),
    }
    if streaming is not None:
        meta["stream"] = json.dumps({
            "hop_length": streaming.hop,
            "min_first_chunk": streaming.min_first_chunk,
            "delay_frames": streaming.delay_frames,
            "context_samples": streaming.context_samples,
            "start_padding": streaming.pad_left,
            "end_padding": streaming.pad_right,
            "states": streaming.state_shapes,
        })
    return meta


def export_model(model: nn.Module, data, output: str | os.PathLike, *, quantize: Quantize | str = Quantize.none,
                 streaming: bool = False, opset: int = ExportConfig.opset,
                 summary: Optional[dict] = None, stream_training: Optional[dict] = None,
                 members: Optional[list[dict]] = None) -> Path:
    """Write ``model`` (a KeywordClassifier or an Ensemble) to ``output`` as ONNX, check it with
    onnx.checker and (fp32) against PyTorch, and return the path. ``data`` (the run's data
    settings), ``summary`` (its summary.json), ``stream_training`` (its plain stream settings,
    for a model trained on streams) and ``members`` (an ensemble's runs) tell the model card
    what it was trained and tested on."""
    quantize = Quantize(quantize).value
    model = copy.deepcopy(model).cpu().eval()
    stream_graph = None
    if streaming:
        check_streamable(model)
        stream_graph = StreamingGraph(model, _export_rnn(model.encoder)).eval()
        graph, args, names = stream_graph, *_streaming_io(stream_graph)
    else:
        for encoder in [m for m in model.modules() if isinstance(m, RecurrentEncoder)]:
            encoder.rnn = _export_rnn(encoder)
        graph, args, names = OfflineGraph(model).eval(), *_offline_io(model)

    output = Path(output)
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=output.parent, prefix=".export-") as tmp:
            path = Path(tmp) / "model.onnx"
            _torch_export(graph, args, path, opset=opset, **names)
            if quantize == "int8":
                _quantize(path, streaming=stream_graph)
            proto = onnx.load(str(path))
            for key, value in metadata(model, plain(data), quantize=quantize, streaming=stream_graph,
                                       summary=summary or {}, stream_training=stream_training,
                                       members=members).items():
                proto.metadata_props.add(key=key, value=value)
            onnx.checker.check_model(proto, full_check=True)
            if quantize == "none":
                _verify(proto, graph, args, names["input_names"])
            onnx.save(proto, str(path))
            os.replace(path, output)
    except OSError as exc:  # a full disk, a read-only folder: the previous file stays as it was
        raise SpeechRNNError(f"{output}: could not write the ONNX model ({exc.strerror}); make room or "
                             "pick a writable place, then run `speechrnn export` again") from None
    return output


def _offline_io(model):
    clip = torch.randn(2, model.clip_samples) * 0.1
    names = dict(input_names=["audio"], output_names=["logits", "probs"],
                 dynamic_axes={"audio": {0: "batch", 1: "samples"},
                               "logits": {0: "batch"}, "probs": {0: "batch"}})
    return (clip,), names


def _streaming_io(graph: StreamingGraph):
    batch = 2
    states = {name: torch.zeros([batch if d == "batch" else d for d in shape])
              for name, shape in graph.state_shapes.items()}
    states["offset"] = torch.zeros(1, dtype=torch.long)
    chunk = torch.randn(batch, 4 * graph.min_first_chunk) * 0.1
    state_names = list(states)
    dynamic = {"audio": {0: "batch", 1: "samples"}, "logits": {0: "batch", 1: "frames"},
               "probs": {0: "batch", 1: "frames"}, "frames": {0: "batch", 1: "frames"}}
    for name, shape in graph.state_shapes.items():
        axes = {i: "batch" for i, d in enumerate(shape) if d == "batch"}
        dynamic[name] = dynamic[f"{name}_out"] = axes
    names = dict(input_names=["audio", *state_names],
                 output_names=["logits", "probs", "frames", *(f"{n}_out" for n in state_names)],
                 dynamic_axes=dynamic)
    return (chunk, *states.values()), names


def _torch_export(graph, args, path: Path, *, opset: int, input_names, output_names,
                  dynamic_axes) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        # The TorchScript exporter announces its deprecation and every traced shape read.
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, args, str(path), dynamo=False, opset_version=opset,
                          input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, do_constant_folding=True)


def _quantize(path: Path, streaming: bool) -> None:
    """int8 weights for every MatMul/Conv/LSTM outside the MFCC frontend (whose DFT and log-mel
    need float precision), by onnxruntime's dynamic quantisation, and for every GRU/RNN.

    A streaming graph keeps its LSTM out of the dynamic quantisation: onnxruntime's
    DynamicQuantizeLSTM does not carry the state passed between calls as the float LSTM does
    (measured with onnxruntime 1.32: the same audio in 4 chunks or in 1 drifted by 0.19 in the
    outputs, the float graph by 1e-7), so its weights are stored as int8 like a GRU's."""
    from onnxruntime.quantization import QuantType, quantize_dynamic  # int8 only: slow to import

    frontend = [node.name for node in onnx.load(str(path)).graph.node if "/frontend/" in node.name]
    quantized = path.with_name("int8.onnx")
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # it advises shape pre-processing on every call
    try:
        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8,
                         op_types_to_quantize=["MatMul", "Conv", *(() if streaming else ["LSTM"])],
                         nodes_to_exclude=frontend)
    finally:
        logging.getLogger().setLevel(level)
    proto = onnx.load(str(quantized))
    _store_recurrent_weights_int8(proto.graph)
    onnx.save(proto, str(path))


def _store_recurrent_weights_int8(graph: onnx.GraphProto) -> None:
    """Store the input and recurrent weights of GRU/RNN nodes (and LSTM nodes left in float) as
    int8, one scale per row (per direction and gate unit), restored to float by a Cast and a Mul
    in front of the node.

    onnxruntime has no int8 GRU/RNN kernel. It folds these constants back to float once, when
    the session starts, so the layer then runs at fp32 speed from a file with int8 weights. The
    alternative, the recurrence as int8 MatMuls in an ONNX Loop, was slower than fp32 per clip
    when we tried it: each Loop step costs more than a whole GRU step."""
    weights = {t.name: t for t in graph.initializer}
    restore = []
    for node in graph.node:
        if node.op_type not in ("GRU", "RNN", "LSTM"):
            continue
        for name in node.input[1:3]:  # W [directions, gates * hidden, inputs], R likewise
            weight = numpy_helper.to_array(weights[name])
            scale = np.abs(weight).max(axis=2, keepdims=True) / 127
            scale[scale == 0] = 1.0
            graph.initializer.remove(weights[name])
            graph.initializer.extend([
                numpy_helper.from_array(np.round(weight / scale).astype(np.int8), f"{name}_int8"),
                numpy_helper.from_array(scale.astype(np.float32), f"{name}_scale"),
            ])
            restore += [
                onnx.helper.make_node("Cast", [f"{name}_int8"], [f"{name}_float"],
                                      to=onnx.TensorProto.FLOAT, name=f"{name}_cast"),
                onnx.helper.make_node("Mul", [f"{name}_float", f"{name}_scale"], [name],
                                      name=f"{name}_dequantize"),
            ]
    nodes = restore + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)


def _verify(proto: onnx.ModelProto, graph: nn.Module, args, input_names) -> None:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1  # one small batch: a thread pool only costs start-up
    session = ort.InferenceSession(proto.SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {n: a.numpy() for n, a in zip(input_names, args)})[0]
    with torch.no_grad():
        want = graph(*args)[0].numpy()
    diff = float(np.abs(got - want).max())
    if not diff <= VERIFY_ATOL:
        raise SpeechRNNError(f"the exported graph disagrees with PyTorch (max |logit diff| "
                             f"{diff:.2e} > {VERIFY_ATOL}); please report this with the config")


# --------------------------------------------------------------------------- runs and CLI

def default_output(source: str | os.PathLike, quantize: str = "none",
                   streaming: bool = False) -> Path:
    """RUN_DIR/model[.streaming][.int8].onnx, or the same name beside a checkpoint file."""
    source = Path(source)
    folder = source if source.is_dir() else source.parent
    name = "model" + (".streaming" if streaming else "") + (".int8" if quantize == "int8" else "")
    return folder / f"{name}.onnx"


def recorded_summary(source: str | os.PathLike) -> dict:
    """The run's summary.json (test accuracy, clip counts, overrides), or {} if it has none."""
    source = Path(source)
    run_dir = source if source.is_dir() else source.parent
    if run_dir.name == "checkpoints":
        run_dir = run_dir.parent
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    return summary if isinstance(summary, dict) else {}


def export_run(source: str | os.PathLike, settings=None,
               output: str | os.PathLike | None = None) -> Path:
    """Export a run dir (its best checkpoint) or a checkpoint file as ``settings`` (the run's
    ``export`` config: filename, opset, quantize, streaming) says; by default to ``filename``
    in the run dir, or beside the checkpoint."""
    settings = settings or ExportConfig()
    model, cfg, _ = checkpoint.load_model(source)
    folder = Path(source) if Path(source).is_dir() else Path(source).parent
    return export_model(model, cfg.data, output or folder / settings.filename,
                        quantize=settings.quantize, streaming=bool(settings.streaming),
                        opset=int(settings.opset), summary=recorded_summary(source),
                        stream_training=plain(cfg.stream) if cfg.stream.enabled else None)


def ensemble_members(sources: list[str | os.PathLike]) -> list[dict]:
    """What the model card says of each run of an ensemble: where it is, its test accuracy and
    the overrides it was trained with (from its summary.json)."""
    return [{"run": str(source), "test_accuracy": summary.get("test_accuracy"),
             "overrides": list(summary.get("overrides") or [])}
            for source, summary in ((s, recorded_summary(s)) for s in sources)]


def export_ensemble(sources: list[str | os.PathLike], output: str | os.PathLike,
                    settings=None) -> Path:
    """Export several runs of one recipe (other seeds) as one ``Ensemble`` file."""
    settings = settings or ExportConfig()
    loaded = [checkpoint.load_model(source) for source in sources]
    model = Ensemble([m for m, _, _ in loaded], [str(s) for s in sources])
    cfg = loaded[0][1]
    clips = recorded_summary(sources[0]).get("clips")
    return export_model(model, cfg.data, output, quantize=settings.quantize,
                        streaming=bool(settings.streaming), opset=int(settings.opset),
                        summary={"clips": clips} if clips else {},
                        members=ensemble_members(sources))


def export_after_training(run_dir: Path, settings) -> dict[str, str]:
    """What a finished run exports: always the plain fp32 ``settings.filename``, plus the int8
    and streaming variants when ``settings`` asks; a variant the model cannot have is skipped
    with a warning (the run stays usable), the plain model never is."""
    variants = [("onnx", "none", False)]
    if settings.quantize is Quantize.int8:
        variants.append(("onnx_int8", "int8", False))
    if settings.streaming:
        variants.append(("onnx_streaming", "none", True))
    written = {}
    for key, quantize, streaming in variants:
        output = run_dir / settings.filename if key == "onnx" else default_output(run_dir, quantize, streaming)
        variant = ExportConfig(opset=int(settings.opset), quantize=quantize, streaming=streaming)
        try:
            written[key] = str(export_run(run_dir, variant, output))
        except SpeechRNNError as exc:
            if key == "onnx":
                raise
            log.warning("skipped the %s export: %s", key, exc)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="speechrnn export", description="Export a trained run or checkpoint to ONNX "
        "(raw audio in, logits/probs out; contract in export/README.md).")
    parser.add_argument("source", nargs="+",
                        help="a run dir (uses checkpoints/best.pt) or a .pt checkpoint; several "
                        "runs of one recipe (other seeds) make one ensemble (needs -o)")
    parser.add_argument("-o", "--output", help="the .onnx file to write (default: "
                        "model[.streaming][.int8].onnx in the run dir or beside the checkpoint)")
    parser.add_argument("--quantize", choices=[q.value for q in Quantize], default="none",
                        help="int8: dynamic int8 weights (onnxruntime)")
    parser.add_argument("--streaming", action="store_true",
                        help="a stateful chunk-by-chunk model (unidirectional encoders)")
    parser.add_argument("--opset", type=int, default=ExportConfig.opset)
    args = parser.parse_args(argv)
    settings = ExportConfig(opset=args.opset, quantize=args.quantize, streaming=args.streaming)
    if len(args.source) > 1:
        if not args.output:
            raise UsageError(f"exporting {len(args.source)} runs as one ensemble: name the file "
                             "with -o FILE.onnx")
        path = export_ensemble(args.source, args.output, settings)
    else:
        output = args.output or default_output(args.source[0], args.quantize, args.streaming)
        path = export_run(args.source[0], settings, output)
    size = path.stat().st_size / 1e6
    kind = ("streaming " if args.streaming else "") + ("int8" if args.quantize == "int8" else "fp32")
    ensemble = f", ensemble of {len(args.source)}" if len(args.source) > 1 else ""
    print(f"wrote {path} ({kind}{ensemble}, {size:.2f} MB)")
    return 0
