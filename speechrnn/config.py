"""Typed config schema, registered in Hydra's ConfigStore.

``speechrnn/conf/config.yaml`` lists ``base_config`` first in its defaults, so every group file and every
command-line override is checked against these dataclasses at composition time: an unknown key
or a value outside an Enum fails before anything runs, and the message lists the valid choices.
The defaults live here only: the group files (``speechrnn/conf/<group>/``) hold what differs.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.errors import HydraException
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

from .errors import SpeechRNNError, UsageError

# Shipped inside the package (package data), so an installed wheel composes the same configs.
CONF_DIR = Path(__file__).resolve().parent / "conf"

# The ONNX opsets our graphs export at and onnxruntime runs (measured with torch 2.14: 7 and 8
# write a ConstantFill op onnxruntime does not have; torch writes at most 23).
MIN_OPSET, MAX_OPSET = 9, 23


@dataclass(frozen=True)
class Bounds:
    """The values a numeric setting may take: ge/le inclusive, gt/lt exclusive, None unbounded."""

    ge: Optional[float] = None
    gt: Optional[float] = None
    le: Optional[float] = None
    lt: Optional[float] = None

    def admits(self, value: float) -> bool:
        return ((self.ge is None or value >= self.ge) and (self.gt is None or value > self.gt)
                and (self.le is None or value <= self.le) and (self.lt is None or value < self.lt))

    def __str__(self) -> str:
        low = self.ge if self.ge is not None else self.gt
        high = self.le if self.le is not None else self.lt
        if low is not None and high is not None:
            return (f"in {'[' if self.ge is not None else '('}{low:g}, {high:g}"
                    f"{']' if self.le is not None else ')'}")
        if low is not None:
            return f"of at least {low:g}" if self.ge is not None else f"above {low:g}"
        return f"of at most {high:g}" if self.le is not None else f"below {high:g}"


def ranged(default: Any, **bounds: float) -> Any:
    """A schema field with the range its values must lie in (checked by ``validate`` and when
    its section is built)."""
    return field(default=default, metadata={"bounds": Bounds(**bounds)})


class DataSource(str, Enum):
    synthetic = "synthetic"
    speech_commands = "speech_commands"
    fsdd = "fsdd"
    folder = "folder"


class OnBadFile(str, Enum):
    skip = "skip"
    error = "error"


class Cell(str, Enum):
    rnn = "rnn"
    lstm = "lstm"
    gru = "gru"


class Nonlinearity(str, Enum):
    tanh = "tanh"
    relu = "relu"


class Pooling(str, Enum):
    last = "last"
    mean = "mean"
    max = "max"
    attention = "attention"


class Impl(str, Enum):
    torch = "torch"
    reference = "reference"


class Optimizer(str, Enum):
    adamw = "adamw"
    sgd = "sgd"


class Schedule(str, Enum):
    onecycle = "onecycle"
    cosine = "cosine"
    none = "none"


class Logger(str, Enum):
    none = "none"
    wandb = "wandb"


class Quantize(str, Enum):
    none = "none"
    int8 = "int8"


class Section:
    """A top-level config section that holds valid values only: building one (by hand, or
    ``OmegaConf.to_object`` at an entry point) turns a choice given as a string into its Enum
    member and checks every range and rule of the section, so builders that take it check nothing."""

    def __post_init__(self) -> None:
        name = SECTION_NAMES[type(self)]
        for key, (_, hint) in _schema_fields(type(self)).items():
            value = getattr(self, key)
            if isinstance(hint, type) and issubclass(hint, Enum) and not isinstance(value, (hint, type(None))):
                setattr(self, key, _member(hint, value, f"{name}.{key}"))
        check_section(self, name)


def _member(kind: type[Enum], value: Any, key: str) -> Enum:
    try:
        return kind(value)
    except ValueError:
        names = [member.value for member in kind]
        raise UsageError(f"{key}={value!r} is not one of {names}; set {key} to one of them") from None


@dataclass
class SynthConfig:
    per_word: int = ranged(200, ge=1)
    unknown_per_word: int = ranged(12, ge=0)
    seed: int = 0
    # Share of the speakers drawn as a neural voice (speechrnn/data/neural.py, the [voices]
    # extra) instead of espeak-ng; 0 renders espeak-ng speakers only.
    neural_fraction: float = ranged(0.0, ge=0, le=1)


@dataclass
class DataConfig(Section):
    source: DataSource = DataSource.synthetic
    # None means the default cache folder (synthetic) or a required setting (other sources).
    root: Optional[str] = None
    sample_rate: int = ranged(16000, ge=1000, le=384000)
    clip_seconds: float = ranged(1.0, gt=0, le=60)
    # Command words; other words in the corpus become _unknown_ (empty: every word is a class).
    words: list[str] = field(default_factory=list)
    silence: bool = True
    unknown: bool = True
    silence_fraction: float = ranged(0.1, ge=0, lt=1)
    unknown_fraction: float = ranged(0.1, ge=0, lt=1)
    # _unknown_'s share of the training split alone (None: unknown_fraction), so a model can
    # learn from more non-command words while validation and test keep their make-up.
    train_unknown_fraction: Optional[float] = ranged(None, ge=0, lt=1)
    # Noise recordings that _silence_ clips are cut from, and the default for noise
    # augmentation (None: Speech Commands' own _background_noise_; FSDD has none).
    noise_dir: Optional[str] = None
    test_speakers: list[str] = field(default_factory=list)
    train_manifest: Optional[str] = None
    val_manifest: Optional[str] = None
    test_manifest: Optional[str] = None
    val_fraction: float = ranged(0.1, ge=0, lt=1)
    test_fraction: float = ranged(0.1, ge=0, lt=1)
    on_bad_file: OnBadFile = OnBadFile.skip
    download: bool = False
    batch_size: int = ranged(64, ge=1)
    num_workers: int = ranged(2, ge=0)
    # Keep each clip's decoded samples (at sample_rate, int16) in the cache folder
    # ($SPEECHRNN_CACHE/decoded), so later epochs and runs read them instead of the files.
    cache: bool = True
    synth: SynthConfig = field(default_factory=SynthConfig)
    # Long-range memory probe: word first, then this many seconds of noise (None: off).
    probe_delay_seconds: Optional[float] = ranged(None, ge=0, le=60)
    # Cross-corpus testing: the test split is this source's test split (read from test_root),
    # with its labels mapped onto the training labels (digits "0".."9" <-> "zero".."nine").
    test_source: Optional[DataSource] = None
    test_root: Optional[str] = None
    # Mixed source: synthetic renderings (data.synth settings) of each listed label's word join
    # the training split; validation and test stay real. Label -> word to say, e.g. {"0": zero}.
    mix_synthetic: dict[str, str] = field(default_factory=dict)


@dataclass
class FeaturesConfig(Section):
    n_mfcc: int = ranged(40, ge=1)
    n_fft: int = ranged(512, ge=2, le=65536)
    win_length: int = ranged(480, ge=1)
    hop_length: int = ranged(160, ge=1, le=65536)
    n_mels: int = ranged(40, ge=1, le=1024)
    f_min: float = ranged(20.0, ge=0)
    f_max: Optional[float] = ranged(None, gt=0)
    # Mel power below this is clamped before the log (see features.MFCC). conf/features/mfcc.yaml
    # sets 1e-6; this default is torchaudio's, which runs saved before the setting existed used.
    power_floor: float = ranged(1e-10, gt=0)
    deltas: int = ranged(0, ge=0, le=2)
    # Per-utterance mean/variance: not causal, so such a model cannot be exported for streaming.
    normalize: bool = False
    # With normalize: false keeps each coefficient's spread (mean-only, CMN), so quiet sounds stay
    # quiet instead of being scaled up to the level of speech.
    normalize_variance: bool = True
    freq_masks: int = ranged(0, ge=0)
    freq_mask_width: int = ranged(8, ge=0)
    time_masks: int = ranged(0, ge=0)
    time_mask_width: int = ranged(10, ge=0)


@dataclass
class AugmentConfig(Section):
    enabled: bool = True
    time_shift_seconds: float = ranged(0.1, ge=0)
    noise_dir: Optional[str] = None
    noise_prob: float = ranged(0.8, ge=0, le=1)
    snr_db_min: float = 5.0
    snr_db_max: float = 30.0
    gain_db_min: float = -6.0
    gain_db_max: float = 6.0
    speed_min: float = ranged(0.9, gt=0)
    speed_max: float = 1.1
    # Formant (vocal tract length) warp factor range; 1.0 is no change.
    vtlp_min: float = ranged(1.0, gt=0)
    vtlp_max: float = 1.0
    # Synthetic room reverberation: how often, and the range of reverberation times (s).
    reverb_prob: float = ranged(0.0, ge=0, le=1)
    rt60_min: float = ranged(0.1, gt=0)
    rt60_max: float = 0.6
    # How often a clip goes through a random microphone/line (band limits, spectral tilt).
    channel_prob: float = ranged(0.0, ge=0, le=1)
    # The share of those clips whose line is a telephone's (narrowband: about 300-3400 Hz).
    channel_narrowband: float = ranged(0.0, ge=0, le=1)
    # How often a clip is cut to its speech and zero-padded (like a corpus of trimmed clips).
    endpoint_prob: float = ranged(0.0, ge=0, le=1)
    # Speed and VTLP as a warp of the batch's spectrogram in the model (features.SpectralWarp),
    # on the training device, instead of resampling each clip in the data workers.
    warp_spectrogram: bool = False


@dataclass
class ModelConfig(Section):
    cell: Cell = Cell.gru
    hidden_size: int = ranged(128, ge=1, le=16384)
    num_layers: int = ranged(2, ge=1, le=64)
    bidirectional: bool = False
    dropout: float = ranged(0.1, ge=0, lt=1)
    nonlinearity: Nonlinearity = Nonlinearity.tanh
    pooling: Pooling = Pooling.mean
    conv_layers: int = ranged(0, ge=0, le=2)
    conv_channels: int = ranged(64, ge=1, le=4096)
    # LayerNorm on each input frame: the streaming-friendly way to tame MFCC scales.
    input_norm: bool = True
    impl: Impl = Impl.torch


@dataclass
class OptimConfig(Section):
    name: Optimizer = Optimizer.adamw
    lr: float = ranged(3e-3, gt=0)
    weight_decay: float = ranged(1e-2, ge=0)
    momentum: float = ranged(0.9, ge=0, lt=1)


@dataclass
class SchedulerConfig(Section):
    name: Schedule = Schedule.onecycle
    pct_start: float = ranged(0.2, gt=0, lt=1)
    min_lr: float = ranged(0.0, ge=0)


@dataclass
class TrainerConfig(Section):
    epochs: int = ranged(20, ge=1)
    seed: int = ranged(0, ge=0, lt=2**32)
    device: str = "auto"
    amp: bool = True
    grad_clip: Optional[float] = ranged(5.0, gt=0)
    early_stopping_patience: Optional[int] = ranged(None, ge=1)
    # true/"last" resumes from this run's checkpoints/last.pt; a path resumes from that file.
    resume: Optional[str] = None
    # Train into a run dir that holds a finished or interrupted run, replacing it.
    overwrite: bool = False
    limit_train_batches: Optional[int] = ranged(None, ge=1)
    progress: bool = True
    deterministic: bool = True


@dataclass
class LoggerConfig(Section):
    name: Logger = Logger.none
    project: str = "speechrnn"
    mode: str = "offline"
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class ExportConfig(Section):
    enabled: bool = True
    filename: str = "model.onnx"
    opset: int = ranged(17, ge=MIN_OPSET, le=MAX_OPSET)
    quantize: Quantize = Quantize.none
    streaming: bool = False


@dataclass
class StreamConfig(Section):
    """Training for a stream that never restarts (speechrnn/data/stream.py, speechrnn/objectives.py):
    each example is ``seconds`` of audio holding ``words`` clips of the train split cut to their
    speech, at random offsets, over a bed of noise; the loss is the max-pooling loss over the
    model's per-frame outputs, so a keyword must win at one frame between its start and
    ``delay_seconds`` after its end, and every other frame is pushed to _silence_ or _unknown_."""

    enabled: bool = False
    seconds: float = ranged(6.0, gt=0, le=60)
    words: int = ranged(5, ge=1, le=64)
    delay_seconds: float = ranged(0.3, ge=0, le=2)
    # Where a keyword's window opens: this many seconds before its speech ends, and the word's
    # frames before that must say nothing (_silence_ or _unknown_), so the model names a word
    # once it has heard it instead of guessing from its first sounds. None: at the speech's start.
    window_seconds: Optional[float] = ranged(None, ge=0, le=2)
    # How long a keyword must hold: the loss takes the window's best run of this many seconds of
    # frames (their mean log-posterior; smoothed max pooling) instead of its best frame, so the
    # peak outlasts detect's moving average. 0: one frame.
    peak_seconds: float = ranged(0.0, ge=0, le=1)
    # The bed of noise under a whole sequence (noise files of augment.noise_dir or the data's
    # noise folder), drawn with probability augment.noise_prob at an RMS level in this range.
    noise_dbfs_min: float = ranged(-60.0, le=0)
    noise_dbfs_max: float = ranged(-25.0, le=0)


class ParamType(str, Enum):
    float = "float"
    int = "int"
    categorical = "categorical"


class PrunerName(str, Enum):
    none = "none"
    median = "median"
    hyperband = "hyperband"
    threshold = "threshold"


class SamplerName(str, Enum):
    tpe = "tpe"
    random = "random"


@dataclass
class ParamSpec:
    """One searched value: float/int in [low, high] (log scale if ``log``), or one of ``choices``."""

    type: ParamType = ParamType.float
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[float] = None
    choices: Optional[list[Any]] = None


@dataclass
class PrunerConfig:
    name: PrunerName = PrunerName.median
    # median: no pruning until this many trials have finished, nor before this epoch.
    n_startup_trials: int = ranged(5, ge=0)
    n_warmup_steps: int = ranged(1, ge=0)
    # hyperband: epochs of the smallest rung; each rung keeps 1/reduction_factor of the trials.
    min_resource: int = ranged(1, ge=1)
    reduction_factor: int = ranged(3, ge=2)
    # threshold: prune once val/acc is below this (after n_warmup_steps epochs).
    lower: Optional[float] = None


@dataclass
class SweepConfig(Section):
    """An Optuna study over training configs (``speechrnn sweep sweep=<name>``)."""

    name: str = MISSING  # the study name; also the wandb group of its trials
    dir: str = "sweeps/${sweep.name}"
    trials: int = ranged(20, ge=1)  # finished (complete or pruned) trials, over all workers and machines
    workers: int = ranged(1, ge=1)  # worker processes on this machine
    # None: an Optuna journal file in the sweep dir; or an SQLAlchemy URL (postgresql://...).
    storage: Optional[str] = None
    sampler: SamplerName = SamplerName.tpe
    seed: Optional[int] = 0
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    # A worker that stops sending heartbeats for 2x this long is taken as dead; its trial
    # is marked failed and its parameters are tried again.
    heartbeat_seconds: int = ranged(60, ge=1)
    # "group.key" -> search range, e.g. {"optim.lr": {type: float, low: 1e-4, high: 1e-2, log: true}}
    params: dict[str, ParamSpec] = field(default_factory=dict)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    # Set by `speechrnn sweep` (the search space); absent for plain training.
    sweep: Optional[SweepConfig] = None


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config `speechrnn train OVERRIDES` would run, composed and type-checked by Hydra.

    Any mistake in the overrides (unknown key, bad value or option, malformed syntax, a value
    out of range) becomes a UsageError that names the setting and the fix.
    """
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        # Hydra's override parser raises plain ValueErrors for some malformed overrides.
        raise UsageError(f"bad overrides {list(overrides)}: {describe_config_error(exc)}") from None
    validate(cfg)
    return cfg


def plain(node: Any) -> dict:
    """A config or one of its sections (DictConfig or dataclass) as plain containers, Enums as
    their names: what a checkpoint, a metadata entry or a model card holds."""
    return OmegaConf.to_container(OmegaConf.structured(node), resolve=True, enum_to_str=True)


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """``cfg`` with ``key=value`` overrides (outside Hydra: `speechrnn eval RUN data.root=...`),
    each key checked against the schema (the closest valid name for a typo), then validated."""
    malformed = [item for item in overrides if "=" not in item]
    if malformed:
        raise UsageError(f"{malformed[0]!r} is not a setting=value override (e.g. data.root=/path)")
    try:
        merged = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
    except (OmegaConfBaseException, ValueError) as exc:
        raise UsageError(describe_config_error(exc)) from None
    validate(merged)
    return merged


def check_resolves(cfg: DictConfig) -> None:
    """Every ${...} interpolation resolves: a bad one is named now, not halfway through a run."""
    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        raise UsageError(f"the config does not resolve: {describe_config_error(exc)}") from None


def describe_config_error(exc: BaseException) -> str:
    """One line from Hydra's message and the OmegaConf cause it wraps: the setting, what is
    wrong with it (the valid choices, the closest valid name) and nothing of OmegaConf's internals."""
    cause = exc if isinstance(exc, OmegaConfBaseException) else exc.__cause__
    key = getattr(cause, "full_key", None)
    if key and isinstance(cause, (ConfigAttributeError, ConfigKeyError)) and " not in " in str(cause):
        return unknown_key_message(key)
    if key and isinstance(cause, OmegaConfBaseException):
        return f"{key}: {str(cause).splitlines()[0]}"
    parts: list[str] = []
    for line in str(exc).split("Config search path")[0].splitlines():
        if not line.strip():
            continue
        if line.startswith("\t") and parts:  # "Available options in 'model':" then one a line
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line.strip()
        else:
            parts.append(line.strip())
    return "; ".join(parts)


# -- validation: every setting against the schema, each range defined once, above -------------
def validate(cfg: Any) -> None:
    """Check a whole config (a DictConfig composed by Hydra or loaded from a run) before anything
    runs: every interpolation resolves, no unknown or missing keys, every number finite and within its field's ``ranged``
    bounds, and the rules between settings. Raises UsageError naming every problem, each with
    its setting and the fix, in one line."""
    check_resolves(cfg)
    try:
        problems = _problems(cfg, Config, "")
        if not problems:
            problems = [*_rules(cfg), *_frontend_problems(cfg)]
    except OmegaConfBaseException as exc:
        problems = [describe_config_error(exc)]
    if problems:
        raise UsageError("; ".join(problems))


def check_section(section: Any, name: str) -> None:
    """Check one section (``cfg.model``, an ``AugmentConfig`` ...) as ``validate`` would: for the
    builders that take a section only."""
    problems = _problems(section, _schema_fields(Config)[name][0], f"{name}.")
    problems += SECTION_RULES.get(name, lambda _: [])(section) if not problems else []
    if problems:
        raise UsageError("; ".join(problems))


def unknown_key_message(key: str) -> str:
    """"unknown setting model.hiden_size; did you mean model.hidden_size?" (the closest valid
    name, matched whole or by its last part: lr -> optim.lr)."""
    names = _setting_names()
    by_last = {name.rsplit(".", 1)[-1]: name for name in names}
    last = key.rsplit(".", 1)[-1]
    close = ([by_last[last]] if last in by_last else difflib.get_close_matches(key, names, n=1, cutoff=0.6)
             or [by_last[m] for m in difflib.get_close_matches(last, by_last, n=1, cutoff=0.75)])
    hint = f"did you mean {close[0]}?" if close else "see speechrnn/config.py for the settings"
    return f"unknown setting {key}; {hint}"


def _setting_names(schema: type = None, prefix: str = "") -> list[str]:
    names = []
    for name, (sub, _) in _schema_fields(schema or Config).items():
        names.append(prefix + name)
        if sub is not None:
            names += _setting_names(sub, f"{prefix}{name}.")
    return names


def _schema_fields(schema: type) -> dict[str, tuple[Optional[type], Any]]:
    """name -> (the dataclass the field holds, or None; the field's type hint)."""
    hints = typing.get_type_hints(schema)
    out = {}
    for f in dataclasses.fields(schema):
        hint = hints[f.name]
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        plain = inner[0] if typing.get_origin(hint) is typing.Union and len(inner) == 1 else hint
        out[f.name] = (plain if dataclasses.is_dataclass(plain) else None, plain)
    return out


def _problems(node: Any, schema: type, prefix: str) -> list[str]:
    """Unknown, missing, non-finite and out-of-range values in ``node`` (a DictConfig or an
    instance of ``schema``)."""
    fields = _schema_fields(schema)
    problems = []
    if isinstance(node, DictConfig):
        problems += [unknown_key_message(prefix + str(k)) for k in node.keys() if k not in fields]
    bounds = {f.name: f.metadata.get("bounds") for f in dataclasses.fields(schema)}
    for name, (sub, hint) in fields.items():
        key = prefix + name
        if isinstance(node, DictConfig) and name not in node.keys():
            problems.append(f"{key} is missing; add {key}=...")
            continue
        if isinstance(node, DictConfig) and OmegaConf.is_missing(node, name):
            problems.append(f"{key} has no value (???); add {key}=... on the line")
            continue
        value = getattr(node, name)
        if value is None:
            continue
        if sub is not None:
            problems += _problems(value, sub, key + ".")
        elif typing.get_origin(hint) is dict and dataclasses.is_dataclass(typing.get_args(hint)[1]):
            for item, spec in value.items():
                problems += _problems(spec, typing.get_args(hint)[1], f"{key}.{item}.")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                problems.append(f"{key}={value} is not a finite number; "
                                + (f"set it to a value {bounds[name]}" if bounds[name] else "set a number"))
            elif bounds[name] is not None and not bounds[name].admits(value):
                problems.append(f"{key}={value} is out of range; set it to a value {bounds[name]}")
    return problems


AUGMENT_RANGES = (("snr_db_min", "snr_db_max"), ("gain_db_min", "gain_db_max"), ("speed_min", "speed_max"),
                  ("vtlp_min", "vtlp_max"), ("rt60_min", "rt60_max"))


def _augment_rules(augment: Any) -> list[str]:
    return [f"augment.{low}={getattr(augment, low)} is above augment.{high}={getattr(augment, high)}; swap them"
            for low, high in AUGMENT_RANGES if getattr(augment, low) > getattr(augment, high)]


def _data_rules(data: Any) -> list[str]:
    held_out = data.val_fraction + data.test_fraction
    if held_out >= 1:
        return [f"data.val_fraction + data.test_fraction = {held_out:g} leaves no training data; "
                "keep their sum below 1"]
    return []


def _stream_rules(stream: Any) -> list[str]:
    if stream.noise_dbfs_min > stream.noise_dbfs_max:
        return [f"stream.noise_dbfs_min={stream.noise_dbfs_min} is above stream.noise_dbfs_max="
                f"{stream.noise_dbfs_max}; swap them"]
    return []


SECTION_RULES = {"augment": _augment_rules, "data": _data_rules, "stream": _stream_rules}


def _streamed_model_rules(cfg: Any) -> list[str]:
    """stream.enabled trains the per-frame outputs of a causal model, one state per sequence."""
    if not cfg.stream.enabled:
        return []
    needs = {"model.pooling": (cfg.model.pooling, "last"),
             "model.bidirectional": (cfg.model.bidirectional, False),
             "features.normalize": (cfg.features.normalize, False),
             "features.deltas": (cfg.features.deltas, 0),
             # A time warp would move the words away from their frame targets.
             "augment.warp_spectrogram": (cfg.augment.warp_spectrogram, False),
             "data.silence": (cfg.data.silence, True)}
    return [f"stream.enabled=true needs {key}={str(want).lower()} (it is {getattr(value, 'value', value)}); "
            f"set {key}={str(want).lower()} or stream.enabled=false"
            for key, (value, want) in needs.items() if getattr(value, "value", value) != want]


def _rules(cfg: Any) -> list[str]:
    problems = [problem for name, rule in SECTION_RULES.items() for problem in rule(getattr(cfg, name))]
    problems += _streamed_model_rules(cfg)
    device = str(cfg.trainer.device)
    if device != "auto":
        import torch  # slow to import, and the train command's tab completion loads this module

        try:
            torch.device(device)
        except RuntimeError:
            problems.append(f"trainer.device={device} is not a device; use auto, cpu, cuda, cuda:N or mps")
    return problems


def _frontend_problems(cfg: Any) -> list[str]:
    """The MFCC frontend's own rules between features.* and data.sample_rate, and a clip long
    enough for one frame (the frontend defines them; building it is cheap)."""
    from .features import Frontend  # torch: as above

    try:
        frontend = Frontend.from_config(cfg.features, cfg.data.sample_rate)
    except SpeechRNNError as exc:
        return [str(exc)]
    samples = round(cfg.data.clip_seconds * cfg.data.sample_rate)
    if samples < frontend.mfcc.min_samples:
        return [f"data.clip_seconds={cfg.data.clip_seconds} gives {samples} samples, fewer than one "
                f"MFCC window needs ({frontend.mfcc.min_samples}); lengthen the clips or shorten features.n_fft"]
    return []


# A section's type -> its name in Config ("model" ...).
SECTION_NAMES = {sub: name for name, (sub, _) in _schema_fields(Config).items()}


def register() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)


register()
