"""A wheel built from this checkout, installed into fresh virtual environments.

With the training extras, `speechrnn train recipe=smoke` and `speechrnn predict` work from an
empty folder, with the configs read from the installed package. With no extras (the runtime a
plain `pip install speechrnn` gives), predict works without torch and training commands say
which extra to install.

Nothing is downloaded: the wheel is installed with --no-deps and a fresh venv sees its
dependencies through a .pth file, either the dev venv's site-packages or a folder holding only
the distributions that the wheel's own metadata requires.
"""

from __future__ import annotations

import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers import REPO

pytestmark = pytest.mark.slow

DEV_SITE = Path(sysconfig.get_paths()["purelib"])


def run(args, *, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                            text=True, timeout=300)
    if check:
        assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel of the working tree (tracked and new files, not ignored ones), built in a copy."""
    tmp = tmp_path_factory.mktemp("wheel")
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO).stdout
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            (tmp / "src" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, tmp / "src" / name)
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", tmp / "dist", tmp / "src"], cwd=tmp)
    (built,) = (tmp / "dist").glob("speechrnn-*.whl")
    return built


def fresh_venv(root: Path, wheel: Path, deps: Path) -> Path:
    """A new venv with the wheel installed and `deps` on its path; returns its bin folder."""
    run([sys.executable, "-m", "venv", "--without-pip", root], cwd=root.parent)
    python = root / "bin" / "python"
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps",
         "--no-index", wheel], cwd=root.parent)
    site = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
               cwd=root).stdout.strip()
    Path(site, "deps.pth").write_text(f"{deps}\n")
    return root / "bin"


def requirements(lines) -> list[Requirement]:
    """The requirements that apply without any extra."""
    reqs = [Requirement(line) for line in lines or []]
    return [r for r in reqs if r.marker is None or r.marker.evaluate({"extra": ""})]


def runtime_deps(wheel: Path, dest: Path) -> set[str]:
    """Links in `dest` to what `pip install speechrnn` brings: the wheel's Requires-Dist without
    extras, followed through the dev venv's installed distributions. Returns their names."""
    with zipfile.ZipFile(wheel) as zf:
        (meta,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(zf.read(meta).decode())
    todo, seen = requirements(metadata.get_all("Requires-Dist")), set()
    dest.mkdir()
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        dist = distribution(req.name)
        for top in {f.parts[0] for f in dist.files or [] if f.parts[0] != ".."}:
            if not (dest / top).exists():
                (dest / top).symlink_to(dist.locate_file(top))
        todo += requirements(dist.requires)
    return seen


@pytest.fixture(scope="module")
def full_env(wheel, tmp_path_factory) -> Path:
    return fresh_venv(tmp_path_factory.mktemp("full") / "venv", wheel, DEV_SITE)


@pytest.fixture(scope="module")
def trained(full_env, tmp_path_factory) -> tuple[Path, list[Path]]:
    """`speechrnn train recipe=smoke` from an empty folder: the model and three clips."""
    work = tmp_path_factory.mktemp("empty")
    result = run([full_env / "speechrnn", "train", "recipe=smoke", "hydra.run.dir=run"], cwd=work)
    assert (work / "run" / "model.onnx").is_file(), result.stderr
    clips = sorted(Path(os.environ["SPEECHRNN_CACHE"]).rglob("*.wav"))[:3]
    assert len(clips) == 3
    return work / "run" / "model.onnx", clips


def test_the_installed_package_holds_the_configs(full_env, tmp_path):
    shown = run([full_env / "python", "-c", "import json, speechrnn, speechrnn.config as c; "
                 "print(json.dumps([speechrnn.__file__, str(c.CONF_DIR)]))"], cwd=tmp_path)
    module, conf = map(Path, json.loads(shown.stdout))
    venv = full_env.parent
    assert module.is_relative_to(venv) and conf.is_relative_to(venv)
    assert (conf / "config.yaml").is_file() and (conf / "recipe" / "fsdd" / "gru.yaml").is_file()
    assert not (conf / "recipe").is_symlink()
    # Hydra composes from the installed package: the recipe is found, its values are applied.
    job = run([full_env / "speechrnn", "train", "recipe=fsdd/gru", "--cfg", "job"], cwd=tmp_path)
    assert "source: fsdd" in job.stdout


def test_the_wheel_carries_version_license_and_types(wheel, full_env, tmp_path):
    import speechrnn

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.parser.Parser().parsestr(zf.read(meta).decode())
        (license_file,) = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert zf.read(license_file).decode() == (REPO / "LICENSE").read_text()
    assert "speechrnn/py.typed" in names
    assert metadata["License-Expression"] == "MIT"
    assert "MIT License" in (REPO / "LICENSE").read_text()
    assert metadata["Version"] == speechrnn.__version__
    shown = run([full_env / "speechrnn", "--version"], cwd=tmp_path)
    assert shown.stdout == f"speechrnn {speechrnn.__version__}\n"


def test_train_and_predict_from_an_empty_folder(full_env, trained, tmp_path):
    model, clips = trained
    result = run([full_env / "speechrnn", "predict", model, *clips, "--format", "json"],
                 cwd=tmp_path)
    rows = json.loads(result.stdout)
    assert [row["path"] for row in rows] == [str(c) for c in clips]
    assert all(0 <= row["score"] <= 1 and row["label"] for row in rows)


def test_the_runtime_alone_predicts_without_torch(wheel, full_env, trained, tmp_path):
    names = runtime_deps(wheel, tmp_path / "deps")
    assert {"numpy", "soundfile", "soxr", "onnxruntime"} <= names
    assert not names & {"torch", "hydra-core", "omegaconf", "wandb", "optuna", "tqdm"}
    runtime = fresh_venv(tmp_path / "venv", wheel, tmp_path / "deps")
    work = tmp_path / "empty"
    work.mkdir()
    absent = run([runtime / "python", "-c", "import torch"], cwd=work, check=False)
    assert "No module named 'torch'" in absent.stderr

    model, clips = trained
    bare = run([runtime / "speechrnn", "predict", model, *clips, "--format", "json"], cwd=work)
    full = run([full_env / "speechrnn", "predict", model, *clips, "--format", "json"], cwd=work)
    assert json.loads(bare.stdout) == json.loads(full.stdout)

    # [sweep] brings [train] with it, so a sweep names the one extra that covers it.
    for command, extra in [("train", "train"), ("export", "train"), ("sweep", "sweep")]:
        refused = run([runtime / "speechrnn", command, "x=1"], cwd=work, check=False)
        assert refused.returncode == 2, refused.stderr
        (line,) = refused.stderr.strip().splitlines()
        assert re.fullmatch(rf"speechrnn {command}: error: needs the {extra} extra "
                            rf"\(no module '\w+'\): pip install 'speechrnn\[{extra}\]'", line)
    assert list(work.iterdir()) == []
