"""Shared fixtures: the repository, the release command line and generated fleets.

The command line and the fleet generator are the repository's own release builds
(`cargo build --release --bin pciplan --example fleet`, built here when missing), found in
CARGO_TARGET_DIR or the repository's target/.
"""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def target_dir() -> Path:
    return Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target")


def _built(rel: str) -> Path:
    path = target_dir() / "release" / rel
    if not path.exists():
        subprocess.run(
            ["cargo", "build", "--release", "--bin", "pciplan", "--example", "fleet"],
            cwd=REPO,
            check=True,
        )
    assert path.exists(), f"{path} was not built"
    return path


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cli() -> Path:
    """The release `pciplan` binary."""
    return _built("pciplan")


@pytest.fixture(scope="session")
def fleet_bin() -> Path:
    """The release fleet generator (examples/fleet)."""
    return _built("examples/fleet")


def run_cli(cli: Path, *args: str, stdin: str = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(cli), *args], input=stdin, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="session")
def make_fleet(fleet_bin, tmp_path_factory):
    """make_fleet(kind, n, seed) -> path of a JSON Lines fleet written by examples/fleet."""
    made = {}

    def make(kind: str, n: int, seed: int = 1) -> Path:
        key = (kind, n, seed)
        if key not in made:
            path = tmp_path_factory.mktemp("fleet") / f"{kind}-{n}-{seed}.jsonl"
            with open(path, "wb") as out:
                subprocess.run([str(fleet_bin), kind, str(n), str(seed)], stdout=out, check=True)
            made[key] = path
        return made[key]

    return make


def compact(obj) -> str:
    """An object as the command line writes it on one line (serde's compact JSON)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def as_item(line: str):
    """A fleet line as a dict when the dict writes back to the same text (then both mean
    the same request), else the line itself (the generator mixes in malformed lines)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return line
    return obj if isinstance(obj, dict) and compact(obj) == line else line
