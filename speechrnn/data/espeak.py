"""espeak-ng as a function: text + voice settings in, int16 samples out.

The library comes from the ``espeakng-loader`` wheel (library and voice data bundled, called
through ctypes); without the wheel, an ``espeak-ng`` program on PATH does the same work.

libespeak-ng keeps its state in globals, which carry over from one utterance to the next (its
pitch-flutter phase, for one), so the same call can give different samples later on. Each
LibEspeak therefore loads a private copy of the library file: a private set of globals, which
makes its output depend only on the calls made through it. Close it when done.
"""

from __future__ import annotations

import _ctypes
import ctypes
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import SpeechRNNError

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7

_libc = ctypes.CDLL(None)
_libc.srand.argtypes = [ctypes.c_uint]

_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


@dataclass(frozen=True)
class Prosody:
    """How to say it: ``voice`` is ``language[+variant]`` (e.g. ``en-us+f3``); the rest are
    espeak-ng's own units (rate in words per minute, 80-450; pitch and range 0-100; volume
    0-200, 100 is normal; word gap in 10 ms units)."""

    voice: str
    rate: int = 175
    pitch: int = 50
    range: int = 50
    volume: int = 100
    wordgap: int = 0


class LibEspeak:
    """libespeak-ng from the espeakng-loader wheel, called in-process."""

    def __init__(self):
        import espeakng_loader  # the [train] extra; the espeak-ng program is the fallback

        with tempfile.TemporaryDirectory(prefix="speechrnn-espeak-",
                                         ignore_cleanup_errors=True) as tmp:
            copy = shutil.copy(espeakng_loader.get_library_path(), tmp)
            try:
                lib = ctypes.CDLL(copy)
            except OSError as exc:
                raise SpeechRNNError(
                    f"{copy}: cannot load libespeak-ng from the temporary folder ({exc}); "
                    "point TMPDIR at a folder that allows loading libraries"
                ) from None
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p,
                                          ctypes.c_int]
        lib.espeak_Info.restype = ctypes.c_char_p
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        data = espeakng_loader.get_data_path()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(),
                                     _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise SpeechRNNError(
                f"{data}: libespeak-ng could not initialise with this voice data; "
                "reinstall the espeakng-loader wheel"
            )
        self.lib = lib
        self.sample_rate = int(rate)
        self.name = f"libespeak-ng {lib.espeak_Info(None).decode()} (espeakng-loader)"
        self._chunks: list[np.ndarray] = []
        # Kept on self: the library holds only a raw pointer to it.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def close(self) -> None:
        self.lib.espeak_Terminate()
        if hasattr(_ctypes, "dlclose"):
            _ctypes.dlclose(self.lib._handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _collect(self, samples, count, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, (count,)).copy())
        return 0  # 0: go on synthesising

    def synth(self, text: str, prosody: Prosody, seed: int = 0) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(prosody.voice.encode()) != 0:
            raise SpeechRNNError(f"espeak-ng has no voice {prosody.voice!r}; pick a language "
                                 "from its lang/ folder (e.g. en-us, optionally +variant)")
        settings = {_RATE: prosody.rate, _VOLUME: prosody.volume, _PITCH: prosody.pitch,
                    _RANGE: prosody.range, _WORDGAP: prosody.wordgap}
        for param, value in settings.items():
            self.lib.espeak_SetParameter(param, value, 0)
        # Seed the noise of breathy and Klatt voices: espeak-ng's own generator, and libc's
        # rand(), which the Klatt voices call and which every library in the process shares.
        self.lib.espeak_ng_SetRandSeed(seed)
        _libc.srand(seed)
        self._chunks = []
        encoded = text.encode()
        status = self.lib.espeak_Synth(encoded, len(encoded) + 1, 0, _POS_CHARACTER, 0,
                                       _CHARS_UTF8, None, None)
        if status != 0:
            raise SpeechRNNError(f"libespeak-ng failed (status {status}) to say {text!r}")
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


class CliEspeak:
    """The ``espeak-ng`` program, one run per utterance (its output needs no seeding)."""

    def __init__(self, program: str):
        self.program = program
        version = subprocess.run([program, "--version"], capture_output=True, text=True,
                                 check=False)
        number = re.search(r"\d+\.\d+[\w.-]*", version.stdout)
        self.name = f"espeak-ng {number.group() if number else '(unknown version)'} ({program})"
        self._dir = tempfile.TemporaryDirectory(prefix="speechrnn-espeak-")
        self.sample_rate = sf.info(self._say("a", Prosody("en"))).samplerate

    def close(self) -> None:
        self._dir.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _say(self, text: str, prosody: Prosody) -> str:
        wav = str(Path(self._dir.name) / "say.wav")
        # The program has no pitch-range flag; SSML's prosody range (relative to the default 50)
        # stands in for it.
        ssml = f'<speak><prosody range="{2 * prosody.range}%">{text}</prosody></speak>'
        command = [
            self.program, "-m", "-z", "-v", prosody.voice, "-s", str(prosody.rate),
            "-p", str(prosody.pitch), "-a", str(prosody.volume), "-g", str(prosody.wordgap),
            "-w", wav, ssml,
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0 or not Path(wav).exists():
            raise SpeechRNNError(f"{self.program} failed to say {text!r}: {result.stderr.strip()}")
        return wav

    def synth(self, text: str, prosody: Prosody, seed: int = 0) -> np.ndarray:
        samples, _ = sf.read(self._say(text, prosody), dtype="int16")
        return samples


def open_backend() -> LibEspeak | CliEspeak:
    """The wheel's library if it is installed, else the ``espeak-ng`` program on PATH."""
    try:
        return LibEspeak()
    except ImportError:
        pass
    program = shutil.which("espeak-ng")
    if program is None:
        raise SpeechRNNError(
            "espeak-ng is not available: install the wheel (pip install espeakng-loader) "
            "or the espeak-ng program (e.g. apt install espeak-ng)"
        )
    return CliEspeak(program)
