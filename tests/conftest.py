"""Shared fixtures: the real recordings in ../shared/data and a tiny synthetic set."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest
import torch

from helpers import REPO
from pg import Unavailable, postgres

SHARED_DATA = REPO.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "disabled")


@pytest.fixture(scope="session", autouse=True)
def synth_cache(tmp_path_factory) -> Path:
    """Renders of the synthetic set go to a per-session cache, never the user's."""
    cache = tmp_path_factory.mktemp("speechrnn-cache")
    os.environ["SPEECHRNN_CACHE"] = str(cache)
    return cache


def shared_path(*parts: str) -> Path:
    """A folder under ../shared/data: fails in CI when missing (CI has it), skips elsewhere."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{path} is missing; CI must have ../shared/data beside the clone")
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread; on a busy machine, spinning pools are 30x slower.
    A module that wants it says so: ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def fsdd_root() -> Path:
    return shared_path("fsdd", "recordings")


@pytest.fixture(scope="session")
def noise_root() -> Path:
    return shared_path("speech_commands_noise")


@pytest.fixture(scope="session")
def tiny_synth(tmp_path_factory) -> Path:
    """A small synthetic set in Speech Commands layout: 3 words + 2 unknown words, 10 speakers."""
    from speechrnn.data.synthetic import render

    out = tmp_path_factory.mktemp("synth")
    render(out, words=["yes", "no", "up"], unknown_words=["cat", "tree"], per_word=12,
           unknown_per_word=4, seed=0)
    return out


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL server for one test (skipped where PostgreSQL is missing, a
    failure in CI)."""
    try:
        with postgres() as url:
            yield url
    except Unavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is needed in CI (.ci/run installs it): {exc}")
        pytest.skip(str(exc))
