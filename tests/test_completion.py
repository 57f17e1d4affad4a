"""Shell completion, end to end: the script `speechrnn train -sc install=bash` prints (the command
`speechrnn train --hydra-help` offers) is sourced in a real bash and its completion function run
on a command line, as bash runs it on <TAB>."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # every test runs the CLI and bash in subprocesses

# The `speechrnn` entry point of this environment comes first on PATH, as after an install.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


@pytest.fixture(scope="module")
def script(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("completion") / "speechrnn.bash"
    result = subprocess.run(["speechrnn", "train", "-sc", "install=bash"], env=ENV,
                            capture_output=True, text=True, check=True)
    path.write_text(result.stdout)
    return path


def tab(script: Path, line: str) -> list[str]:
    """What bash offers for ``line`` (the cursor at its end): COMPREPLY of the installed function."""
    words = line.split() + [""] * line.endswith(" ")
    program = f"""
        source {shlex.quote(str(script))}
        COMP_LINE={shlex.quote(line)}; COMP_POINT=${{#COMP_LINE}}
        COMP_WORDS=({" ".join(map(shlex.quote, words))}); COMP_CWORD={len(words) - 1}
        hydra_bash_completion
        printf '%s\\n' "${{COMPREPLY[@]}}"
    """
    result = subprocess.run(["bash", "-c", program], env=ENV, capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr, result.stderr
    return [word for word in result.stdout.splitlines() if word]


def test_the_script_completes_the_speechrnn_command_and_matches_the_short_form(script):
    text = script.read_text()
    assert text.rstrip().endswith("-F hydra_bash_completion speechrnn")
    short = subprocess.run(["speechrnn", "-sc", "install=bash"], env=ENV, capture_output=True,
                           text=True, check=True)
    assert short.stdout == text


@pytest.mark.parametrize("line,expected", [
    ("speechrnn train mod", ["model.", "model="]),
    ("speechrnn train model=", ["model=crnn", "model=gru", "model=lstm", "model=rnn"]),
    ("speechrnn train recipe=compare/cells model.hid", ["model.hidden_size="]),
    ("speechrnn tr", ["train"]),
    ("speechrnn predict x", []),  # other commands: bash falls back to file names
])
def test_tab_after_speechrnn_offers_the_train_overrides_and_the_commands(script, line, expected):
    assert tab(script, line) == expected
