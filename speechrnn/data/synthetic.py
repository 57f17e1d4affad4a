"""The offline dataset: spoken words rendered by espeak-ng in the Google Speech Commands layout.

``DIR/<word>/<speaker>_nohash_<n>.wav`` (16 kHz mono 16-bit, exactly 1 s), ``validation_list.txt``
and ``testing_list.txt`` (split by speaker, as in GSC) and ``_background_noise_/`` (coloured noise,
hum, music-like tones, clatter, clicks and digital silence: ``noises.py``), so the Speech Commands loader, the silence class and noise augmentation all work
without a download.

A synthetic speaker is a deterministic draw of an English accent, an espeak-ng voice variant, a
speaking rate, pitch, pitch range, word gap and loudness. Every clip varies these a little, ends
with a random punctuation mark (so the intonation varies), lies at a random place in its second
and sits on a faint noise floor. The same arguments give byte-identical files.

With ``neural_fraction`` > 0, that share of the speakers (a separate seeded draw, so the espeak-ng
speakers stay as they were) are neural voices instead (``neural.py``: Piper joe and hibari heart,
from the ``voices`` extra), each with its own pace, pitch, pitch range and noise settings.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from .. import audio
from ..config import DataConfig
from ..errors import SpeechRNNError
from . import neural, noises
from .base import cache_dir
from .espeak import Prosody, open_backend
from .speech_commands import NOISE_DIR

log = logging.getLogger(__name__)

COMMAND_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
# The _unknown_ class: Speech Commands' twenty auxiliary words (the digits among them), words
# that sound like a command ("now", "lift", "shop" ...) and everyday words, so that a word the
# model has no class for lands in _unknown_ rather than in the nearest command. Never a homophone
# of a command ("know", "write"): the same sounds under two labels only teach the model to doubt.
UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "backward",
    "forward", "follow", "learn", "visual", "zero", "one", "two", "three", "four", "five", "six",
    "seven", "eight", "nine",
    "yet", "yeah", "guess", "less", "now", "note", "snow", "cup", "pop", "town", "round",
    "brown", "lift", "west", "lost", "light", "night", "bright", "own", "in", "and",
    "cough", "if", "shop", "top", "stock", "step", "goat", "grow", "show", "low",
    "hello", "the", "what", "where", "water", "morning", "please", "thanks", "music", "window",
    "open", "close", "play", "again", "maybe", "okay", "little", "people", "number", "table",
    "yellow", "apple", "coffee", "turn", "start", "next", "back", "time", "home",
)
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

SAMPLE_RATE = 16000
MARKER = "synth.json"  # written last: a folder with it is a complete render
# Part of the cache key: bump it when a change here changes the rendered audio.
FORMAT_VERSION = 3

# English voices in espeak-ng's bundled data (lang/gmw/), one accent per speaker.
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd")
# Variants (voices/!v/), split by voice register so speakers are half low, half high voices.
# Left out: the robots and the long echoes (robosoft*, *Robot, Demonic, RicishayMax*, Tweaky).
LOW_VARIANTS = (
    "", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "klatt", "klatt2", "klatt3", "klatt4",
    "klatt5", "klatt6", "whisper", "croak", "Alex", "Andy", "AnxiousAndy", "Denis", "Diogo",
    "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike",
    "Nguyen", "Reed", "Storm", "adam", "announcer", "antonio", "benjamin", "boris", "caleb",
    "david", "ed", "edward", "edward2", "fast", "grandpa", "gustave", "ian", "iven", "iven2",
    "iven3", "iven4", "john", "kaukovalta", "marcelo", "max", "michel", "miguel", "mike2",
    "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "travis", "victor",
)
HIGH_VARIANTS = (
    "f1", "f2", "f3", "f4", "f5", "whisperf", "Alicia", "Andrea", "Annie", "anika", "aunty",
    "belinda", "grandma", "linda", "shelby", "steph", "steph2", "steph3", "zac",
)

MIN_SPEAKERS = 10
CLIPS_PER_SPEAKER = 2  # each speaker says each word about this often (GSC: 1-5 times)
HOLDOUT_FRACTION = 0.1  # of the speakers, for validation and again for testing
# Low enough that no voice saturates inside espeak-ng; the level is set afterwards.
ESPEAK_VOLUME = 50
MAX_RATE = 450  # espeak-ng's fastest speaking rate, words per minute
EDGE_SECONDS = 0.03  # a word never starts or ends closer than this to the clip's edges
_WORD = re.compile(r"[a-z0-9][a-z0-9'-]*")


@dataclass(frozen=True)
class Speaker:
    id: str
    prosody: Prosody
    level_db: float  # peak level of the speaker's clips, dBFS


@dataclass(frozen=True)
class _Task:
    """One word's clips, rendered in order by one fresh espeak-ng."""

    word: str
    clips: tuple[tuple[Speaker, str], ...]  # (speaker, file name)
    seed: int


def draw_speaker(seed: int, index: int, taken: set[str] = frozenset(),
                 neural_fraction: float = 0.0) -> Speaker:
    """Speaker ``index`` of a seed: the same whatever the number of speakers drawn. With
    probability ``neural_fraction`` (its own draw) it is a neural voice instead of espeak-ng."""
    rng = _rng(seed, "speaker", index)
    speaker_id = f"{rng.integers(2**32):08x}"
    while speaker_id in taken:
        speaker_id = f"{rng.integers(2**32):08x}"
    if neural_fraction > 0 and _rng(seed, "neural", index).random() < neural_fraction:
        return _draw_neural(speaker_id, _rng(seed, "neural-speaker", index))
    variants = HIGH_VARIANTS if rng.random() < 0.5 else LOW_VARIANTS
    variant = variants[rng.integers(len(variants))]
    accent = ACCENTS[rng.integers(len(ACCENTS))]
    prosody = Prosody(
        voice=f"{accent}+{variant}" if variant else accent,
        rate=int(rng.integers(130, 241)),
        pitch=int(rng.integers(25, 76)),
        range=int(rng.integers(20, 96)),
        volume=ESPEAK_VOLUME,
        wordgap=int(rng.integers(0, 6)),
    )
    return Speaker(speaker_id, prosody, level_db=float(rng.uniform(-20, -2)))


def _draw_neural(speaker_id: str, rng: np.random.Generator) -> Speaker:
    """A neural voice (neural.py) with its own pace, pitch, pitch range and noise."""
    prosody = neural.NeuralProsody(
        voice=neural.VOICES[rng.integers(len(neural.VOICES))],
        rate=int(rng.integers(140, 221)),
        pitch=int(rng.integers(30, 71)),
        range=int(rng.integers(25, 86)),
        noise_scale=float(rng.uniform(0.4, 0.9)),
        noise_w=float(rng.uniform(0.4, 1.0)),
    )
    return Speaker(speaker_id, prosody, level_db=float(rng.uniform(-20, -2)))


def draw_speakers(seed: int, count: int, neural_fraction: float = 0.0) -> list[Speaker]:
    speakers: list[Speaker] = []
    for index in range(count):
        speakers.append(draw_speaker(seed, index, {s.id for s in speakers}, neural_fraction))
    return speakers


def speaker_count(per_word: int, unknown_per_word: int) -> int:
    return max(MIN_SPEAKERS, math.ceil(max(per_word, unknown_per_word) / CLIPS_PER_SPEAKER))


def split_speakers(speakers: Sequence[Speaker], seed: int) -> dict[str, set[str]]:
    """Speaker ids per split, about 80/10/10, at least one speaker in validation and in test."""
    order = _rng(seed, "split", len(speakers)).permutation(len(speakers))
    held = max(1, round(HOLDOUT_FRACTION * len(speakers)))
    ids = [speakers[i].id for i in order]
    return {"val": set(ids[:held]), "test": set(ids[held : 2 * held]),
            "train": set(ids[2 * held :])}


def _rng(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator for one purpose (named by ``parts``), the same in every process."""
    keys = [zlib.crc32(p.encode()) if isinstance(p, str) else p for p in parts]
    return np.random.default_rng([seed, *keys])


def _plan(counts: dict[str, int], speakers: Sequence[Speaker], seed: int) -> list[_Task]:
    """Clip i of a word goes to speaker (offset + i) mod S; the offset spreads words over
    speakers, so words with few clips are not all said by the same ones."""
    tasks = []
    for word, count in counts.items():
        offset = zlib.crc32(word.encode()) % len(speakers)
        clips = []
        for i in range(count):
            speaker = speakers[(offset + i) % len(speakers)]
            clips.append((speaker, f"{speaker.id}_nohash_{i // len(speakers)}.wav"))
        tasks.append(_Task(word, tuple(clips), seed))
    return tasks


def _vary(prosody: Prosody, rng: np.random.Generator) -> Prosody:
    """One utterance of a speaker: the speaker's settings, a little off."""
    return dataclasses.replace(
        prosody,
        rate=int(np.clip(prosody.rate * rng.uniform(0.92, 1.08), 80, MAX_RATE)),
        pitch=int(np.clip(prosody.pitch + rng.integers(-5, 6), 0, 100)),
        range=int(np.clip(prosody.range + rng.integers(-8, 9), 0, 100)),
    )


def _trim(samples: np.ndarray) -> np.ndarray:
    """Drop the leading and trailing silence (below -46 dB of the peak, which keeps echo tails)."""
    magnitude = np.abs(samples.astype(np.int32))
    loud = np.flatnonzero(magnitude > 0.005 * magnitude.max(initial=0))
    if loud.size == 0:
        return samples[:0]
    return samples[loud[0] : loud[-1] + 1]


def _say(backend, word: str, prosody: Prosody, rng: np.random.Generator,
         max_samples: int) -> np.ndarray:
    """The word as float32 at 16 kHz, trimmed, sped up until it fits in ``max_samples``."""
    text = word + rng.choice([".", "!", "?", ""], p=[0.4, 0.2, 0.2, 0.2])
    seed = int(rng.integers(2**31))
    while True:
        spoken = _trim(backend.synth(text, prosody, seed))
        if spoken.size == 0:
            raise SpeechRNNError(f"espeak-ng ({backend.name}) said nothing for {text!r} "
                                 f"with voice {prosody.voice}")
        samples = audio.resample(spoken.astype(np.float32) / 32768, backend.sample_rate,
                                 SAMPLE_RATE)
        if samples.size <= max_samples:
            return samples
        if prosody.rate >= MAX_RATE:
            raise SpeechRNNError(f"{word!r} takes longer than 1 s even at the fastest rate; "
                                 "use shorter words")
        faster = math.ceil(prosody.rate * samples.size / max_samples * 1.1)
        prosody = dataclasses.replace(prosody, rate=min(MAX_RATE, faster))


def _clip(backend, word: str, speaker: Speaker, rng: np.random.Generator) -> np.ndarray:
    """One second: the word at the speaker's level, at a random place, on a faint noise floor."""
    edge = round(EDGE_SECONDS * SAMPLE_RATE)
    samples = _say(backend, word, _vary(speaker.prosody, rng), rng, SAMPLE_RATE - 2 * edge)
    peak = 10 ** (min(-1.0, speaker.level_db + rng.uniform(-2, 2)) / 20)
    samples *= peak / np.abs(samples).max()
    floor = peak * 10 ** (-rng.uniform(45, 65) / 20)
    clip = rng.normal(0, floor, SAMPLE_RATE).astype(np.float32)
    start = int(rng.integers(edge, SAMPLE_RATE - edge - samples.size + 1))
    clip[start : start + samples.size] += samples
    return clip


def _render_task(args: tuple[_Task, str]) -> list[str]:
    """Render one word's clips into ``tmp/<word>/``; returns the backends' names."""
    task, tmp = args
    folder = Path(tmp) / task.word
    folder.mkdir()
    with open_backend() as espeak:
        names = [espeak.name]
        for speaker, name in task.clips:
            rng = _rng(task.seed, "clip", task.word, name)
            is_neural = isinstance(speaker.prosody, neural.NeuralProsody)
            backend = neural.load(speaker.prosody.voice) if is_neural else espeak
            names.append(backend.name)
            _write_wav(folder / name, _clip(backend, task.word, speaker, rng))
        return names


def _write_wav(path: Path, samples: np.ndarray) -> None:
    """16-bit PCM at 16 kHz. Encoded in memory: soundfile fsyncs every file it closes."""
    encoded = io.BytesIO()
    sf.write(encoded, audio.to_int16(samples), SAMPLE_RATE, format="WAV", subtype="PCM_16")
    path.write_bytes(encoded.getvalue())


def _write_noise(root: Path, seed: int) -> None:
    (root / NOISE_DIR).mkdir()
    for kind in noises.KINDS:
        _write_wav(root / NOISE_DIR / f"{kind}.wav", noises.make(kind, _rng(seed, "noise", kind), SAMPLE_RATE))


def _check_words(words: Sequence[str], unknown_words: Sequence[str]) -> None:
    if not words:
        raise SpeechRNNError("no words to render; pass at least one word")
    listed = [*words, *unknown_words]
    for word in listed:
        if not _WORD.fullmatch(word):
            raise SpeechRNNError(
                f"{word!r} cannot be a word folder; use lower-case letters, digits, ' and - only"
            )
    repeated = sorted({w for w in listed if listed.count(w) > 1})
    if repeated:
        raise SpeechRNNError(f"words listed twice: {', '.join(repeated)}; list each word once")


def _is_render(path: Path) -> bool:
    return (path / MARKER).is_file()


def _check_target(out: Path) -> None:
    if out.exists() and not (out.is_dir() and (_is_render(out) or not any(out.iterdir()))):
        raise SpeechRNNError(
            f"{out}: exists and is not a synthetic dataset; pass a new or empty folder "
            "(or delete it)"
        )


def _publish(tmp: Path, out: Path, replace: bool) -> None:
    """Move the finished render into place. An earlier render there is replaced, or kept if
    ``replace`` is false (another process finished the same render first)."""
    if replace and _is_render(out):
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old)
        return
    if out.is_dir() and not _is_render(out):
        out.rmdir()  # the empty folder it was given
    try:
        tmp.rename(out)
    except OSError:
        if not _is_render(out):
            raise


def _default_workers(tasks: int) -> int:
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    return max(1, min(cores, tasks))


def render(
    out_dir: str | os.PathLike,
    words: Sequence[str] = COMMAND_WORDS,
    unknown_words: Sequence[str] = UNKNOWN_WORDS,
    per_word: int = 200,
    unknown_per_word: int = 12,
    seed: int = 0,
    workers: int | None = None,
    replace: bool = True,
    neural_fraction: float = 0.0,
) -> Path:
    """Render the dataset into ``out_dir`` (new, empty, or an earlier render, which is replaced)
    and return it. Files are written to a temporary folder beside it and moved in at the end."""
    out = Path(out_dir).absolute()
    words, unknown_words = list(words), list(unknown_words)
    _check_words(words, unknown_words)
    if per_word < 1 or (unknown_words and unknown_per_word < 1):
        raise SpeechRNNError(f"clips per word must be at least 1 (got {per_word} and "
                             f"{unknown_per_word})")
    if seed < 0:
        raise SpeechRNNError(f"seed must be 0 or more (got {seed})")
    if workers is not None and workers < 1:
        raise SpeechRNNError(f"workers must be at least 1 (got {workers})")
    if not 0 <= neural_fraction <= 1:
        raise SpeechRNNError(f"neural_fraction must lie in [0, 1] (got {neural_fraction})")
    _check_target(out)

    speakers = draw_speakers(seed, speaker_count(per_word, unknown_per_word), neural_fraction)
    neural.require(sorted({s.prosody.voice for s in speakers
                           if isinstance(s.prosody, neural.NeuralProsody)}))
    splits = split_speakers(speakers, seed)
    counts = {**dict.fromkeys(words, per_word), **dict.fromkeys(unknown_words, unknown_per_word)}
    tasks = _plan(counts, speakers, seed)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        # Each word starts from a fresh espeak-ng, so no clip depends on the number of workers.
        jobs = [(task, str(tmp)) for task in tasks]
        processes = _default_workers(len(tasks)) if workers is None else workers
        if processes == 1:
            backends = {name for names in map(_render_task, jobs) for name in names}
        else:
            with ProcessPoolExecutor(processes) as pool:
                backends = {name for names in pool.map(_render_task, jobs) for name in names}
        _write_noise(tmp, seed)
        for split, list_name in (("val", "validation_list.txt"), ("test", "testing_list.txt")):
            entries = sorted(f"{task.word}/{name}" for task in tasks for speaker, name in task.clips
                             if speaker.id in splits[split])
            (tmp / list_name).write_text("".join(f"{entry}\n" for entry in entries))
        heard = {speaker.id for task in tasks for speaker, _ in task.clips}
        marker = {
            "format": FORMAT_VERSION,
            "words": words,
            "unknown_words": unknown_words,
            "per_word": per_word,
            "unknown_per_word": unknown_per_word,
            "seed": seed,
            "sample_rate": SAMPLE_RATE,
            "clips": sum(len(task.clips) for task in tasks),
            "speakers": {split: len(ids & heard) for split, ids in splits.items()},
            "backend": sorted(backends),
        }
        if neural_fraction:  # recorded when set; without it the marker is as it always was
            marker["neural_fraction"] = neural_fraction
        (tmp / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        _publish(tmp, out, replace)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def ensure_rendered(cfg: DataConfig) -> Path:
    """The synthetic dataset a DataConfig asks for: ``cfg.root`` if it holds files, else rendered
    into ``cfg.root`` or, when that is unset, into a cache folder keyed by the render's arguments
    (and reused from there)."""
    if cfg.root and Path(cfg.root).is_dir() and any(Path(cfg.root).iterdir()):
        return Path(cfg.root)
    words = list(cfg.words) or list(COMMAND_WORDS)
    unknown_words = [w for w in UNKNOWN_WORDS if w not in words] if cfg.unknown else []
    args = dict(words=words, unknown_words=unknown_words, per_word=int(cfg.synth.per_word),
                unknown_per_word=int(cfg.synth.unknown_per_word), seed=int(cfg.synth.seed))
    neural_fraction = float(cfg.synth.neural_fraction)
    if neural_fraction:  # in the key only when set, so the espeak-only caches keep their folders
        args["neural_fraction"] = neural_fraction
    if cfg.root:
        out = Path(cfg.root)
    else:
        key = json.dumps({"format": FORMAT_VERSION, **args}, sort_keys=True)
        out = cache_dir() / "synthetic" / hashlib.sha256(key.encode()).hexdigest()[:12]
        if _is_render(out):
            return out
    log.info("rendering the synthetic dataset (%d words x %d clips, %d unknown words x %d) into %s",
             len(words), args["per_word"], len(unknown_words), args["unknown_per_word"], out)
    return render(out, **args, replace=False)


def _at_least(minimum: int):
    """An argparse type: a whole number >= minimum."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _fraction(text: str) -> float:
    """An argparse type: a number in [0, 1]."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {value}")
    return value


def _word_list(text: str) -> list[str]:
    return [w.strip() for w in text.split(",") if w.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="speechrnn synth",
        description="Render spoken words with espeak-ng into a Speech Commands-layout folder.",
    )
    parser.add_argument("--out", required=True, type=Path,
                        help="output folder (new, empty or an earlier render)")
    parser.add_argument("--words", type=_word_list, default=",".join(COMMAND_WORDS),
                        help="comma-separated command words (default: %(default)s)")
    parser.add_argument("--unknown-words", type=_word_list, default=",".join(UNKNOWN_WORDS),
                        help="comma-separated words for the _unknown_ class; '' for none "
                             "(default: %(default)s)")
    parser.add_argument("--per-word", type=_at_least(1), default=200,
                        help="clips per command word (default: 200)")
    parser.add_argument("--unknown-per-word", type=_at_least(1), default=12,
                        help="clips per unknown word (default: 12)")
    parser.add_argument("--seed", type=_at_least(0), default=0,
                        help="random seed, 0 or more (default: 0)")
    parser.add_argument("--workers", type=_at_least(1), default=None,
                        help="processes (default: one per core)")
    parser.add_argument("--neural-fraction", type=_fraction, default=0.0,
                        help="share of speakers drawn as a neural voice (the [voices] extra) "
                             "instead of espeak-ng (default: 0)")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    out = render(args.out, words=args.words, unknown_words=args.unknown_words,
                 per_word=args.per_word, unknown_per_word=args.unknown_per_word, seed=args.seed,
                 workers=args.workers, neural_fraction=args.neural_fraction)
    seconds = time.perf_counter() - start
    info = json.loads((out / MARKER).read_text())
    speakers = ", ".join(f"{split} {count}" for split, count in info["speakers"].items())
    print(f"words     {' '.join(info['words'])} ({info['per_word']} clips each)")
    if info["unknown_words"]:
        unknown = " ".join(info["unknown_words"])
        print(f"unknown   {unknown} ({info['unknown_per_word']} clips each)")
    print(f"clips     {info['clips']} + {len(noises.KINDS)} background files in {NOISE_DIR}/")
    print(f"speakers  {speakers}")
    print(f"backend   {', '.join(info['backend'])}")
    print(f"took      {seconds:.1f} s")
    print(f"output    {out}")
    return 0
