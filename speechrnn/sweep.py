"""`speechrnn sweep`: an Optuna search over training configs, on one machine or many.

    speechrnn sweep sweep=<name> [sweep.trials=N] [sweep.workers=W] [sweep.storage=URL] [overrides]
    speechrnn sweep --show DIR

The search space is a file in speechrnn/conf/sweep/. Every trial composes the Hydra config with the
command's overrides plus its sampled values, trains into DIR/trial_NNNN/ (a normal run dir) and
returns its best val/acc; the test split is reported for the winner only. Unpromising trials are
pruned after an epoch. The study lives in DIR/study.journal, or in the database at sweep.storage,
which lets workers on several machines share it. Running the same command again resumes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shlex
import socket
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Optional

import optuna
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from optuna.storages.journal import JournalFileBackend
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from . import leaderboard
from .config import (CONF_DIR, Config, ParamSpec, ParamType, PrunerConfig, PrunerName, SamplerName,
                     SweepConfig, compose_config, plain)
from .data import build_splits
from .errors import SpeechRNNError, UsageError
from .leaderboard import shown
from .training import fit

log = logging.getLogger("speechrnn.sweep")

USAGE = """usage: speechrnn sweep sweep=<name> [sweep.trials=N] [sweep.workers=W] [sweep.storage=URL] [overrides...]
       speechrnn sweep --show DIR

Search spaces: speechrnn/conf/sweep/{names}.yaml. Training overrides (trainer.epochs=5, data.root=...)
apply to every trial. Re-run the same command to resume a study."""

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STATUS = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
          TrialState.RUNNING: "running"}
JOURNAL = "study.journal"
# Below this many completed trials, parameter importances and a parallel-coordinate plot are
# noise drawn as if it meant something.
MIN_TRIALS_FOR_PARAM_PLOTS = 5
STUDY_FILE = "sweep.yaml"
HOST = socket.gethostname()


class SurplusTrial(Exception):
    """A trial asked for after the study already had its trials (two workers raced for the last one)."""


# -- configuration ----------------------------------------------------------------------------
def override_keys(overrides: list[str]) -> set[str]:
    return {o.split("=", 1)[0].lstrip("+~") for o in overrides}


def load_sweep(overrides: list[str]) -> Config:
    """The typed config of a sweep command, checked: a search space is chosen and no searched key is fixed."""
    cfg = compose_config(overrides)
    if cfg.sweep is None:
        raise SpeechRNNError(f"no search space chosen; add sweep=<name> with a name from {CONF_DIR / 'sweep'}: "
                             f"{', '.join(space_names())}")
    fixed = sorted(override_keys(overrides) & set(cfg.sweep.params))
    if fixed:
        raise SpeechRNNError(f"{', '.join(fixed)}: both searched (speechrnn/conf/sweep) and fixed on the command line; "
                             "drop the override, or search a copy of the space without it")
    return OmegaConf.to_object(cfg)


def space_names() -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / "sweep").glob("*.yaml"))


def suggest(trial: optuna.Trial, name: str, spec: ParamSpec) -> object:
    try:
        if spec.type is ParamType.categorical:
            if not spec.choices:
                raise ValueError("a categorical parameter needs choices: [...]")
            return trial.suggest_categorical(name, list(spec.choices))
        if spec.low is None or spec.high is None:
            raise ValueError(f"a {spec.type.value} parameter needs low and high")
        if spec.type is ParamType.int:
            return trial.suggest_int(name, int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)
        return trial.suggest_float(name, spec.low, spec.high, step=spec.step, log=spec.log)
    except ValueError as exc:
        raise SpeechRNNError(f"sweep.params.{name}: {exc}; fix it in speechrnn/conf/sweep/") from None


def sampled_overrides(trial: optuna.Trial, params: dict[str, ParamSpec]) -> list[str]:
    return [f"{name}={suggest(trial, name, spec)}" for name, spec in params.items()]


def standalone_overrides(overrides: list[str]) -> list[str]:
    """`speechrnn train` overrides that give a trial of this sweep command its config without
    the sweep: the recipe and the settings the search space picks, then the command's own
    training overrides (a trial adds its sampled values)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        choices = compose("config", overrides=overrides, return_hydra_config=True).hydra.runtime.choices
    space = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "sweep" / f"{choices.sweep}.yaml"))
    settings = {key: value for key, value in space.items() if key not in ("defaults", "sweep")}
    training = [o for o in overrides if override_keys([o]).isdisjoint({"sweep", "recipe"})
                and not o.lstrip("+~").startswith("sweep.")]
    return [f"recipe={choices.recipe}", *_as_overrides(settings), *training]


def _as_overrides(tree: dict, prefix: str = "") -> list[str]:
    """Nested settings as Hydra command-line overrides (key.sub=value)."""
    out = []
    for key, value in tree.items():
        if isinstance(value, dict):
            out += _as_overrides(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={_hydra_value(value)}")
    return out


def _hydra_value(value) -> str:
    if isinstance(value, list):
        return "[" + ",".join(map(_hydra_value, value)) + "]"
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str) and (not re.fullmatch(r"[A-Za-z_][\w./-]*", value)
                                   or value.lower() in ("true", "false", "null", "inf", "nan")):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"  # a string, as written
    return str(value)


def merged(*groups: list[str]) -> list[str]:
    """Override lists joined, a later value of a key replacing an earlier one in its place."""
    by_key: dict[str, str] = {}
    for override in (o for group in groups for o in group):
        by_key[override.split("=", 1)[0].lstrip("+~")] = override
    return list(by_key.values())


# -- storage and study ------------------------------------------------------------------------
def open_storage(sweep: SweepConfig, sweep_dir: Path):
    if not sweep.storage:
        return optuna.storages.JournalStorage(JournalFileBackend(str(sweep_dir / JOURNAL)))
    # Workers on other machines send heartbeats; a trial whose worker went silent is failed
    # and its parameters retried once.
    beat = sweep.heartbeat_seconds
    where = f"sweep.storage={public_url(sweep.storage)}"
    try:
        return optuna.storages.RDBStorage(
            database_url(sweep.storage), heartbeat_interval=beat, grace_period=2 * beat,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1),
            engine_kwargs={"pool_pre_ping": True},
        )
    except (ArgumentError, NoSuchModuleError) as exc:
        raise UsageError(f"{where}: not a database URL ({_first_line(exc)}); use "
                         "postgresql://USER:PASSWORD@HOST:PORT/DB, or leave it unset for a journal "
                         "file in the sweep dir") from None
    except ImportError as exc:  # Optuna's word for a missing database driver
        raise UsageError(f"{where}: no driver for this database ({exc.__cause__ or exc}); "
                         "pip install 'speechrnn[sweep]' brings psycopg2 for postgresql://") from None
    except SQLAlchemyError as exc:
        raise UsageError(f"{where}: cannot use the database ({_first_line(getattr(exc, 'orig', None) or exc)}); "
                         "start the server or fix the URL") from None


def database_url(url: str) -> str:
    """The SQLAlchemy URL for sweep.storage. postgresql:// (and postgres://, as some hosts write
    it) means psycopg2, the driver the sweep extra installs, unless psycopg 3 is installed:
    SQLAlchemy 2 would pick psycopg 3 for a bare postgresql:// and fail to import it."""
    scheme, sep, rest = url.partition("://")
    if sep and scheme in ("postgresql", "postgres"):
        driver = "psycopg" if importlib.util.find_spec("psycopg") else "psycopg2"
        return f"postgresql+{driver}://{rest}"
    return url


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def make_pruner(pruner: PrunerConfig) -> optuna.pruners.BasePruner:
    if pruner.name is PrunerName.median:
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.n_startup_trials,
                                           n_warmup_steps=pruner.n_warmup_steps)
    if pruner.name is PrunerName.hyperband:
        return optuna.pruners.HyperbandPruner(min_resource=pruner.min_resource,
                                              reduction_factor=pruner.reduction_factor)
    if pruner.name is PrunerName.threshold:
        if pruner.lower is None:
            raise SpeechRNNError("sweep.pruner.name=threshold needs sweep.pruner.lower=<val/acc>")
        return optuna.pruners.ThresholdPruner(lower=pruner.lower, n_warmup_steps=pruner.n_warmup_steps)
    return optuna.pruners.NopPruner()


def make_sampler(sweep: SweepConfig, salt: str) -> optuna.samplers.BaseSampler:
    # Each worker, and each resumed run, draws its own random numbers: the same seed in every
    # process would propose the same parameters again.
    seed = None if sweep.seed is None else int(hashlib.sha256(f"{sweep.seed}:{salt}".encode()).hexdigest()[:8], 16)
    if sweep.sampler is SamplerName.random:
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, sweep.trials // 2 + 1))


def load_study(sweep: SweepConfig, sweep_dir: Path) -> optuna.Study:
    return optuna.create_study(
        study_name=sweep.name, storage=open_storage(sweep, sweep_dir), direction="maximize",
        sampler=make_sampler(sweep, salt=""), pruner=make_pruner(sweep.pruner), load_if_exists=True,
    )


def claimed(study: optuna.Study, before: Optional[int] = None) -> int:
    """Trials finished or running (numbered below `before`, if given): the ones that count towards sweep.trials."""
    trials = study.get_trials(deepcopy=False, states=(*FINISHED, TrialState.RUNNING))
    return sum(before is None or t.number < before for t in trials)


def recover_interrupted(study: optuna.Study) -> None:
    """Fail the running trials whose worker on this machine is gone, and queue the parameters of
    every interrupted trial (Ctrl-C or a dead worker) once more."""
    interrupted = [t for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
                   if t.user_attrs.get("interrupted")]
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        host, _, pid = str(trial.user_attrs.get("worker", "")).rpartition(":")
        if host == HOST and pid.isdigit() and not pid_alive(int(pid)):
            study.tell(trial.number, state=TrialState.FAIL)
            log.warning("trial %d: its worker (pid %s) is gone; marked failed", trial.number, pid)
            interrupted.append(trial)
    retried = {t.user_attrs.get("retry_of") for t in study.get_trials(deepcopy=False)}
    for trial in interrupted:
        if trial.number not in retried and trial.params:
            study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
            log.info("trial %d was interrupted; its parameters are queued again", trial.number)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- trials -----------------------------------------------------------------------------------
class Objective:
    """One trial: compose, train into DIR/trial_NNNN, report val/acc per epoch, return the best."""

    def __init__(self, cfg: Config, overrides: list[str], sweep_dir: Path):
        self.cfg, self.overrides, self.sweep_dir = cfg, overrides, sweep_dir
        self.extra = [] if "logger.group" in override_keys(overrides) else [f"logger.group={cfg.sweep.name}"]
        self.standalone = merged(standalone_overrides(overrides), self.extra)

    def __call__(self, trial: optuna.Trial) -> float:
        if claimed(trial.study, before=trial.number) >= self.cfg.sweep.trials:
            trial.set_user_attr("surplus", True)
            trial.study.stop()
            raise SurplusTrial(f"the study already has its {self.cfg.sweep.trials} trials")
        run_dir = self.sweep_dir / f"trial_{trial.number:04d}"
        sampled = sampled_overrides(trial, self.cfg.sweep.params)
        attrs = {"worker": f"{HOST}:{os.getpid()}", "run_dir": str(run_dir), "overrides": sampled,
                 "train_overrides": merged(self.standalone, sampled)}
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        cfg = compose_config([*self.overrides, *self.extra, *sampled])
        seconds = 0.0

        def on_epoch(epoch: int, record: dict) -> None:
            nonlocal seconds
            seconds += record["epoch_seconds"]
            trial.report(record["val/acc"], epoch)
            if trial.should_prune():
                trial.set_user_attr("train_seconds", round(seconds, 2))
                log.info("trial %d pruned after epoch %d: val/acc %.4f", trial.number, epoch,
                         record["val/acc"])
                raise optuna.TrialPruned(f"val/acc {record['val/acc']:.4f} after epoch {epoch}")

        log.info("trial %d: %s -> %s", trial.number, " ".join(map(shown, sampled)), run_dir)
        with trial_log(run_dir):
            try:
                summary = fit(cfg, run_dir, epoch_callback=on_epoch)
            except KeyboardInterrupt:
                trial.set_user_attr("interrupted", True)
                raise
        for key in ("num_parameters", "train_seconds", "test_accuracy"):
            trial.set_user_attr(key, summary[key])
        log.info("trial %d finished: val/acc %.4f", trial.number, summary["val_accuracy"])
        return summary["val_accuracy"]


@contextlib.contextmanager
def trial_log(run_dir: Path):
    """Copy the log of a trial into its run dir (trial.log), as Hydra does for a normal run."""
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / "trial.log")
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def work(overrides: list[str], worker: int = 0) -> None:
    """One worker: optimise against the shared study until it has sweep.trials finished trials."""
    setup_logging(worker)
    cfg = load_sweep(overrides)
    if cfg.sweep.workers > 1:  # share the cores: W workers each with all of them would thrash
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // cfg.sweep.workers))
    sweep_dir = Path(cfg.sweep.dir).absolute()
    study = load_study(cfg.sweep, sweep_dir)
    # A sampler of its own, seeded by worker and by how far the study has got.
    study.sampler = make_sampler(cfg.sweep, salt=f"{HOST}:{worker}:{len(study.trials)}")
    if claimed(study) >= cfg.sweep.trials:
        return
    # Stop asking for trials once enough are finished or running (in any worker, on any machine).
    stop = MaxTrialsCallback(cfg.sweep.trials, states=(*FINISHED, TrialState.RUNNING))
    study.optimize(Objective(cfg, overrides, sweep_dir), callbacks=[stop], catch=(SurplusTrial,),
                   gc_after_trial=True)


def setup_logging(worker: int) -> None:
    logging.basicConfig(level=logging.INFO,  # no-op where logging is set up already (tests)
                        format=f"[%(asctime)s][w{worker}][%(name)s][%(levelname)s] - %(message)s")
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # Optuna's messages in the same format (its own handler off); its per-trial INFO lines,
    # with unrounded values, give way to the trial lines above.
    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_workers(overrides: list[str], workers: int) -> None:
    """W worker processes (fresh interpreters: `speechrnn sweep --worker I ...`) sharing the study."""
    if workers == 1:
        work(overrides)
        return
    command = [sys.executable, "-m", "speechrnn", "sweep", "--worker"]
    processes = [subprocess.Popen([*command, str(i), *overrides]) for i in range(workers)]
    try:
        codes = [p.wait() for p in processes]
    except KeyboardInterrupt:
        for process in processes:  # they got the same Ctrl-C; let them record their trials as interrupted
            process.wait()
        raise
    if any(codes):
        raise SpeechRNNError(f"sweep workers exited with codes {codes}; see their log above, then re-run "
                             "the same command to resume")


# -- results ----------------------------------------------------------------------------------
def entries(study: optuna.Study) -> list[leaderboard.Entry]:
    """Leaderboard rows from the study; test/acc is shown for the winner only."""
    try:
        best = study.best_trial.number
    except ValueError:  # no trial completed yet
        best = None
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state not in STATUS or t.user_attrs.get("surplus"):
            continue
        value = t.value if t.state == TrialState.COMPLETE else max(t.intermediate_values.values(), default=None)
        rows.append(leaderboard.Entry(
            run_dir=t.user_attrs.get("run_dir", ""),
            overrides=list(t.user_attrs.get("overrides", [])),
            status=STATUS[t.state],
            val_acc=value,
            test_acc=t.user_attrs.get("test_accuracy") if t.number == best else None,
            parameters=t.user_attrs.get("num_parameters"),
            seconds=t.user_attrs.get("train_seconds"),
        ))
    return rows


def save_plots(study: optuna.Study, out_dir: Path) -> list[Path]:
    # Loaded by the report only: the workers, one process each, never plot.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    plots = {"optimization_history": vis.plot_optimization_history,
             "param_importances": vis.plot_param_importances,
             "parallel_coordinate": vis.plot_parallel_coordinate}
    complete = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if complete < MIN_TRIALS_FOR_PARAM_PLOTS:
        log.info("param_importances and parallel_coordinate plots skipped: %d completed trials, "
                 "they need %d", complete, MIN_TRIALS_FOR_PARAM_PLOTS)
        del plots["param_importances"], plots["parallel_coordinate"]
        for name in ("param_importances", "parallel_coordinate"):  # an earlier report's
            (out_dir / f"{name}.png").unlink(missing_ok=True)
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna's "experimental" notices, matplotlib's axis limits
        for name, plot in plots.items():
            try:
                axes = plot(study, target_name="best val/acc")
            except (ValueError, RuntimeError, ZeroDivisionError) as exc:
                log.info("%s plot skipped: %s", name, exc)
                continue
            figure = getattr(axes, "figure", None) or axes.flat[0].figure
            path = out_dir / f"{name}.png"
            figure.savefig(path, dpi=120, bbox_inches="tight")
            plt.close(figure)
            written.append(path)
    return written


def report(study: optuna.Study, sweep_dir: Path) -> str:
    """Write best.json, the leaderboard and the plots into sweep_dir; return the text to print."""
    rows = entries(study)
    counts = {status: sum(e.status == status for e in rows) for status in STATUS.values()}
    lines = [f"study {study.study_name}: " + ", ".join(f"{n} {status}" for status, n in counts.items() if n)]
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        best = study.best_trial
        winner = {"study": study.study_name, "trial": best.number, "val_accuracy": best.value,
                  "test_accuracy": best.user_attrs.get("test_accuracy"), "params": best.params,
                  "overrides": best.user_attrs.get("overrides", []), "run_dir": best.user_attrs.get("run_dir")}
        train = best.user_attrs.get("train_overrides")
        if train:  # the whole command: recipe, search-space settings, training overrides, values
            winner["train_overrides"] = train
            winner["command"] = "speechrnn train " + " ".join(map(shlex.quote, train))
        (sweep_dir / "best.json").write_text(json.dumps(winner, indent=2))
        lines += [f"best: trial {best.number}, val/acc {best.value:.4f}, test/acc "
                  f"{winner['test_accuracy']:.4f} (test reported for the winner only)",
                  "best overrides: " + " ".join(map(shown, winner["overrides"]))
                  + " (exact values, and the command that trains it alone, in best.json)",
                  f"run dir: {winner['run_dir']}"]
    else:
        lines.append("no trial has completed yet")
    markdown = leaderboard.write(rows, sweep_dir, title=f"Leaderboard: study {study.study_name}")
    plots = save_plots(study, sweep_dir) if complete else []
    lines += ["", markdown.rstrip(), ""]
    lines += [f"plot: {p}" for p in plots]
    lines.append(f"leaderboard: {sweep_dir / 'leaderboard.md'} (and .csv)")
    return "\n".join(lines)


def public_url(url: Optional[str]) -> Optional[str]:
    """The storage URL without its password (kept out of files in the sweep dir)."""
    if not url:
        return url
    try:
        # URL.set(password=None) keeps the password (None means "unchanged" there).
        return make_url(url)._replace(password=None).render_as_string(hide_password=False)
    except ArgumentError:
        return "(not a URL)"


def show(sweep_dir: Path) -> str:
    """The report of the study in sweep_dir (from its journal, or the database recorded there),
    or the leaderboard of a `speechrnn train -m` sweep dir."""
    record = sweep_dir / STUDY_FILE
    if not record.exists():
        grid = leaderboard.grid_report(sweep_dir) if (sweep_dir / "multirun.yaml").exists() else None
        if grid is None:
            raise SpeechRNNError(f"{sweep_dir}: not a sweep dir (no {STUDY_FILE}, no multirun jobs); pass the "
                                 "folder that `speechrnn sweep` (sweep.dir) or `speechrnn train -m` wrote")
        return grid
    saved = OmegaConf.load(record)
    storage = open_storage(saved.sweep, sweep_dir)
    try:
        study = optuna.load_study(study_name=saved.sweep.name, storage=storage)
    except KeyError:
        raise SpeechRNNError(f"{sweep_dir}: study {saved.sweep.name!r} not found in its storage") from None
    return report(study, sweep_dir)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE.format(names=",".join(space_names())))
        return 0
    if argv and argv[0] == "--worker":  # started by run_workers
        work(argv[2:], int(argv[1]))
        return 0
    if argv and argv[0] == "--show":
        if len(argv) != 2:
            raise SpeechRNNError("usage: speechrnn sweep --show DIR")
        setup_logging(0)
        print(show(Path(argv[1])))
        return 0
    setup_logging(0)
    cfg = load_sweep(argv)
    sweep_dir = Path(cfg.sweep.dir).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    saved = {"sweep": {**plain(cfg.sweep),
                       "storage": public_url(cfg.sweep.storage)}, "command": [
                 f"sweep.storage={public_url(o.split('=', 1)[1])}" if override_keys([o]) == {"sweep.storage"} else o
                 for o in argv]}  # no password in the sweep dir
    OmegaConf.save(OmegaConf.create(saved), sweep_dir / STUDY_FILE)
    build_splits(cfg.data)  # a data error shows now, not in every trial; the synthetic set renders once
    study = load_study(cfg.sweep, sweep_dir)
    recover_interrupted(study)
    done = len(study.get_trials(deepcopy=False, states=FINISHED))
    where = public_url(cfg.sweep.storage) if cfg.sweep.storage else sweep_dir / JOURNAL
    log.info("study %s in %s: %d of %d trials finished; %d worker(s) on %s", cfg.sweep.name, where, done,
             cfg.sweep.trials, cfg.sweep.workers, HOST)
    run_workers(argv, cfg.sweep.workers)
    print(report(study, sweep_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
