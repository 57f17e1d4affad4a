"""Typed config schema, registered in Hydra's ConfigStore.

``speechrnn/conf/config.yaml`` lists ``base_config`` first in its defaults, so every group file and every
command-line override is checked against these dataclasses at composition time: an unknown key
or a value outside an Enum fails before anything runs, and the message lists the valid choices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig

from .errors import SpeechRNNError

# Shipped inside the package (package data), so an installed wheel composes the same configs.
CONF_DIR = Path(__file__).resolve().parent / "conf"


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


@dataclass
class SynthConfig:
    per_word: int = 200
    unknown_per_word: int = 40
    seed: int = 0


@dataclass
class DataConfig:
    source: DataSource = DataSource.synthetic
    # None means the default cache folder (synthetic) or a required setting (other sources).
    root: Optional[str] = None
    sample_rate: int = 16000
    clip_seconds: float = 1.0
    # Command words; other words in the corpus become _unknown_ (empty: every word is a class).
    words: list[str] = field(default_factory=list)
    silence: bool = True
    unknown: bool = True
    silence_fraction: float = 0.1
    unknown_fraction: float = 0.1
    # Noise recordings that _silence_ clips are cut from, and the default for noise
    # augmentation (None: Speech Commands' own _background_noise_; FSDD has none).
    noise_dir: Optional[str] = None
    test_speakers: list[str] = field(default_factory=list)
    train_manifest: Optional[str] = None
    val_manifest: Optional[str] = None
    test_manifest: Optional[str] = None
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    on_bad_file: OnBadFile = OnBadFile.skip
    download: bool = False
    batch_size: int = 64
    num_workers: int = 2
    synth: SynthConfig = field(default_factory=SynthConfig)
    # Long-range memory probe: word first, then this many seconds of noise (None: off).
    probe_delay_seconds: Optional[float] = None
    # Cross-corpus testing: the test split is this source's test split (read from test_root),
    # with its labels mapped onto the training labels (digits "0".."9" <-> "zero".."nine").
    test_source: Optional[DataSource] = None
    test_root: Optional[str] = None


@dataclass
class FeaturesConfig:
    n_mfcc: int = 40
    n_fft: int = 512
    win_length: int = 480
    hop_length: int = 160
    n_mels: int = 40
    f_min: float = 20.0
    f_max: Optional[float] = None
    deltas: int = 0
    # Per-utterance mean/variance: not causal, so such a model cannot be exported for streaming.
    normalize: bool = False
    freq_masks: int = 0
    freq_mask_width: int = 8
    time_masks: int = 0
    time_mask_width: int = 10


@dataclass
class AugmentConfig:
    enabled: bool = True
    time_shift_seconds: float = 0.1
    noise_dir: Optional[str] = None
    noise_prob: float = 0.8
    snr_db_min: float = 5.0
    snr_db_max: float = 30.0
    gain_db_min: float = -6.0
    gain_db_max: float = 6.0
    speed_min: float = 0.9
    speed_max: float = 1.1
    # Formant (vocal tract length) warp factor range; 1.0 is no change.
    vtlp_min: float = 1.0
    vtlp_max: float = 1.0
    # Synthetic room reverberation: how often, and the range of reverberation times (s).
    reverb_prob: float = 0.0
    rt60_min: float = 0.1
    rt60_max: float = 0.6
    # How often a clip goes through a random microphone/line (band limits, spectral tilt).
    channel_prob: float = 0.0
    # How often a clip is cut to its speech and zero-padded (like a corpus of trimmed clips).
    endpoint_prob: float = 0.0


@dataclass
class ModelConfig:
    cell: Cell = Cell.gru
    hidden_size: int = 128
    num_layers: int = 2
    bidirectional: bool = False
    dropout: float = 0.1
    nonlinearity: Nonlinearity = Nonlinearity.tanh
    pooling: Pooling = Pooling.mean
    conv_layers: int = 0
    conv_channels: int = 64
    # LayerNorm on each input frame: the streaming-friendly way to tame MFCC scales.
    input_norm: bool = True
    impl: Impl = Impl.torch


@dataclass
class OptimConfig:
    name: Optimizer = Optimizer.adamw
    lr: float = 3e-3
    weight_decay: float = 1e-2
    momentum: float = 0.9


@dataclass
class SchedulerConfig:
    name: Schedule = Schedule.onecycle
    pct_start: float = 0.2
    min_lr: float = 0.0


@dataclass
class TrainerConfig:
    epochs: int = 20
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    grad_clip: Optional[float] = 5.0
    early_stopping_patience: Optional[int] = None
    # true/"last" resumes from this run's checkpoints/last.pt; a path resumes from that file.
    resume: Optional[str] = None
    limit_train_batches: Optional[int] = None
    progress: bool = True
    deterministic: bool = True


@dataclass
class LoggerConfig:
    name: Logger = Logger.none
    project: str = "speechrnn"
    mode: str = "offline"
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class ExportConfig:
    enabled: bool = True
    filename: str = "model.onnx"
    opset: int = 17
    quantize: Quantize = Quantize.none
    streaming: bool = False


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
    n_startup_trials: int = 5
    n_warmup_steps: int = 1
    # hyperband: epochs of the smallest rung; each rung keeps 1/reduction_factor of the trials.
    min_resource: int = 1
    reduction_factor: int = 3
    # threshold: prune once val/acc is below this (after n_warmup_steps epochs).
    lower: Optional[float] = None


@dataclass
class SweepConfig:
    """An Optuna study over training configs (``speechrnn sweep sweep=<name>``)."""

    name: str = MISSING  # the study name; also the wandb group of its trials
    dir: str = "sweeps/${sweep.name}"
    trials: int = 20  # finished (complete or pruned) trials, over all workers and machines
    workers: int = 1  # worker processes on this machine
    # None: an Optuna journal file in the sweep dir; or an SQLAlchemy URL (postgresql://...).
    storage: Optional[str] = None
    sampler: SamplerName = SamplerName.tpe
    seed: Optional[int] = 0
    pruner: PrunerConfig = field(default_factory=PrunerConfig)
    # A worker that stops sending heartbeats for 2x this long is taken as dead; its trial
    # is marked failed and its parameters are tried again.
    heartbeat_seconds: int = 60
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
    # Set by `speechrnn sweep` (the search space); absent for plain training.
    sweep: Optional[SweepConfig] = None


def compose_config(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """The config `speechrnn train OVERRIDES` would run, composed and type-checked by Hydra.

    Any mistake in the overrides (unknown key, bad value or option, malformed syntax) becomes
    a SpeechRNNError that quotes Hydra's explanation.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException, ValueError) as exc:
        # Hydra's override parser raises plain ValueErrors for some malformed overrides.
        raise SpeechRNNError(f"bad overrides {list(overrides)}: {describe_config_error(exc)}") from None
    check_resolves(cfg)
    return cfg


def check_resolves(cfg: DictConfig) -> None:
    """Every ${...} interpolation resolves: a bad one is named now, not halfway through a run."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    try:
        OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    except OmegaConfBaseException as exc:
        raise SpeechRNNError(f"the config does not resolve: {describe_config_error(exc)}") from None


def describe_config_error(exc: BaseException) -> str:
    """Hydra's message plus the OmegaConf cause it wraps (which holds the valid choices)."""
    cause = exc.__cause__
    return f"{exc}\n{cause}" if cause is not None and str(cause) not in str(exc) else str(exc)


def register() -> None:
    ConfigStore.instance().store(name="base_config", node=Config)


register()
