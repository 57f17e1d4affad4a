"""`speechrnn <command> ...`: one entry point that hands the rest of the line to a module's main()."""

from __future__ import annotations

import errno
import importlib
import os
import re
import sys

from . import __version__
from .errors import SpeechRNNError, UsageError

# Imported on demand, so `speechrnn predict` never pays for torch or Hydra.
COMMANDS = {
    "synth": ("speechrnn.data.synthetic", "render the offline synthetic dataset (espeak-ng)"),
    "train": ("speechrnn.train_cli", "train a recipe (Hydra overrides; -m for multirun)"),
    "eval": ("speechrnn.evaluate", "re-evaluate a run dir"),
    "export": ("speechrnn.export", "export a run or checkpoint to ONNX"),
    "predict": ("speechrnn.predict", "recognise commands in audio files with an ONNX model"),
    "detect": ("speechrnn.detect", "spot keywords in long recordings"),
    "info": ("speechrnn.card", "show a model's card: labels, training data, accuracy, limits"),
    "listen": ("speechrnn.listen", "recognise keywords from the microphone as they are spoken"),
    "sweep": ("speechrnn.sweep", "hyperparameter search with Optuna"),
    "inspect": ("speechrnn.inspect_cells", "plot gate activations and hidden states for one utterance"),
    "gradients": ("speechrnn.gradients", "plot gradient norms over time (vanishing/exploding)"),
}


# Packages that come with an extra, not with `pip install speechrnn` (the torch-free runtime).
EXTRA_OF = {
    **dict.fromkeys(["torch", "torchaudio", "librosa", "hydra", "omegaconf", "onnx", "matplotlib",
                     "tqdm", "espeakng_loader", "threadpoolctl"], "train"),
    "optuna": "sweep", "psycopg2": "sweep", "wandb": "wandb", "sounddevice": "listen",
}


# Errors of writing that the user fixes (space, a closed pipe), shown in one line.
OUTPUT_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EPIPE)


def unwritable(exc: OSError) -> str:
    """The file a write failed on; "standard output" when it is stdout, whose pending text is then
    dropped (pointed at /dev/null) so that Python's flush at exit does not fail a second time."""
    try:
        sys.stdout.flush()
    except OSError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return "standard output"
    return str(exc.filename) if exc.filename else "the output"


def missing_extra(exc: ModuleNotFoundError) -> str | None:
    """The extra that would install the missing module, or None when it is not one of ours."""
    return EXTRA_OF.get((exc.name or "").split(".")[0])


# Hydra's shell completion flag (`speechrnn train --hydra-help` offers it).
SHELL_COMPLETION = ("-sc", "--shell-completion")


def complete(argv: list[str]) -> int:
    """`speechrnn [train] -sc install=bash|query=bash ...`: Hydra's shell completion for the whole
    CLI. The script that install prints runs `speechrnn -sc query=...` on every <TAB> with the line
    in COMP_LINE; the answer is the command names for the first word, the train app's own (Hydra)
    completions after `speechrnn train`, and nothing after other commands (the shell then offers
    file names)."""
    from . import train_cli  # Hydra takes a while to import; the command names need none of it

    if not any(arg.startswith("query=") for arg in argv):
        return train_cli.main(argv, prog="speechrnn")  # install/uninstall: a script that calls `speechrnn`
    line = os.environ.get("COMP_LINE", "")
    words = line.split() + [""] * line.endswith(" ")  # the last one is the word being completed
    if len(words) == 2:
        print("\n".join(name for name in COMMANDS if name.startswith(words[1])))
    elif len(words) > 2 and words[1] == "train":
        # Hydra strips the program's name from the line; the command's name goes here.
        os.environ["COMP_LINE"] = re.sub(r"^(\s*\S+\s+)train\s*", r"\1", line)
        return train_cli.main(argv, prog="speechrnn")
    return 0


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "usage: speechrnn [--version] <command> [args]\n\ncommands:\n" + "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["--version"], ["-V"]):
        print(f"speechrnn {__version__}")
        return 0
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in SHELL_COMPLETION:
        argv = ["train", *argv]  # the same as the form --hydra-help shows: `speechrnn train -sc ...`
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"speechrnn: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    try:
        if name == "train" and rest[:1] and rest[0] in SHELL_COMPLETION:
            code = complete(rest)  # for the whole CLI, not the train app alone
        else:
            code = int(importlib.import_module(COMMANDS[name][0]).main(rest) or 0)
        sys.stdout.flush()  # a full disk or closed pipe behind stdout shows here, not at exit
        return code
    except SpeechRNNError as exc:
        print(f"speechrnn {name}: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except OSError as exc:
        if exc.errno not in OUTPUT_ERRORS:
            raise
        print(f"speechrnn {name}: error: cannot write {unwritable(exc)}: {exc.strerror}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"speechrnn {name}: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:
        extra = missing_extra(exc)
        if extra is None:
            raise
        print(f"speechrnn {name}: error: needs the {extra} extra (no module {exc.name!r}): "
              f"pip install 'speechrnn[{extra}]'", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
