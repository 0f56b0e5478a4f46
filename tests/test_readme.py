"""The README runs as written: every fenced block, in order, as a new user would.

Each block is run from a fresh copy of the repository, with a virtual environment of its
own (it sees this machine's packages; ``pip install -e .`` in it installs the copy, never
into the machine's Python), and no network index. By language:

- ``bash``: run with ``bash -euo pipefail``; ``python``: run with the environment's Python;
- ``yaml``: a scenario file, checked with ``replisim validate``;
- ``text``: output shown to the reader, not run.

A block of any other language, or of none, fails the test: a new block must say what it
is. A block is skipped only when the HTML comment on the line before it says so:

- ``<!-- readme-test: skip (REASON) -->``: the reason must name a GPU, a remote server or
  a cluster, the only things CI does not have;
- ``<!-- readme-test: ci (REASON) -->``: CI itself runs each of its lines as written
  (checked: every line is in ``.ci/run``), e.g. ``make test``, which is this suite;

and two comments change how a block runs: ``<!-- readme-test: needs docker -->`` (skipped
with the reason when this machine has no Docker engine or bubblewrap) and
``<!-- readme-test: netns (REASON) -->`` (run in a fresh network namespace whose only
interface is loopback: Ray binds to the machine's interface address).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT

README = ROOT / "README.md"
RUNNERS = ("bash", "python", "yaml")
SHOWN = ("text",)
SKIP_REASONS = ("GPU", "remote server", "cluster")
NOISE = ("Traceback", "Warning:", "FutureWarning", "DeprecationWarning", "Triton")


@dataclass(frozen=True)
class Block:
    """One fenced block of the README."""

    line: int
    language: str
    code: str
    marker: str

    @property
    def id(self) -> str:
        return f"line-{self.line}-{self.language or 'none'}"


def blocks(text: str) -> list[Block]:
    """Every fenced block of a Markdown text, with the marker comment above it."""
    found = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        fence = re.match(r"^(\s*)```\s*(\S*)\s*$", lines[i])
        if not fence:
            i += 1
            continue
        indent, language = fence.group(1), fence.group(2)
        start = i
        above = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = re.match(r"^\s*<!--\s*readme-test:\s*(.*?)\s*-->\s*$", above)
        body = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i])
            i += 1
        found.append(
            Block(start + 1, language, "\n".join(body) + "\n", marker.group(1) if marker else "")
        )
        i += 1
    return found


BLOCKS = blocks(README.read_text())


# --- fast: the README's blocks are all accounted for -----------------------------------------


def test_every_block_says_what_it_is():
    """Every fenced block has a language this test runs, or ``text`` for shown output."""
    unknown = [b.id for b in BLOCKS if b.language not in (*RUNNERS, *SHOWN)]
    assert not unknown, f"blocks with no or an unknown language: {unknown}"
    assert sum(b.language in RUNNERS for b in BLOCKS) >= 10


def test_skipped_blocks_need_a_gpu_a_remote_server_or_a_cluster():
    """A block is skipped only for a GPU, a remote server or a cluster, with its reason."""
    for b in BLOCKS:
        if b.marker.startswith("skip"):
            assert any(r in b.marker for r in SKIP_REASONS), (b.id, b.marker)


def test_blocks_left_to_ci_are_run_by_ci_as_written():
    """Each line of a block marked ``ci`` is a line of ``.ci/run``."""
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    ci_blocks = [b for b in BLOCKS if b.marker.startswith("ci")]
    for b in ci_blocks:
        for line in b.code.splitlines():
            command = line.split("#")[0].strip()
            if command:
                assert command in (s.strip() for s in script), (b.id, command)


def test_every_field_of_a_trial_row_is_defined():
    """The README defines every field a trial's row holds (contained, containment_s, ...)."""
    from sim.metrics import METRICS

    text = README.read_text()
    table = text[text.index("## What a trial measures") :]
    table = table[: table.index("\n## ")]
    for name in (*METRICS, "status", "error", "ended_by", "wall_s"):
        if name.startswith("decisions_") and name not in ("decisions_deny", "decisions_alert"):
            continue  # the row covers the kinds between deny and alert
        assert f"`{name}`" in table, name


def test_the_scenario_language_example_validates(tmp_path):
    """The YAML of the scenario-language section validates as printed."""
    from sim.config import load_file

    examples = [b for b in BLOCKS if b.language == "yaml"]
    assert examples
    for b in examples:
        path = tmp_path / "example.yaml"
        path.write_text(b.code)
        assert load_file(path).scenarios


# --- slow: run them ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Iterator[dict[str, str | Path]]:
    """A fresh copy of the repository and a virtual environment to run the README in.

    The environment lives outside /tmp and outside /root, readable by all: live hosts run
    the same interpreter inside their sandboxes, a local (bubblewrap) host mounts a fresh
    /tmp over its binds, and a Docker host runs as ``nobody``.
    """
    root = tmp_path_factory.mktemp("readme")
    repo = root / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False
    ).stdout
    if listed:
        for name in listed.decode().split("\0"):
            if name and (ROOT / name).is_file():
                (repo / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, repo / name)
    else:
        shutil.copytree(ROOT, repo, ignore=shutil.ignore_patterns(".git", "runs", "*.egg-info"))
    # Live hosts bind the interpreter's folders at the same path: not under /tmp (each host
    # mounts its own) nor a folder the machine makes writable (/var/tmp…).
    parent = Path("/var/lib/replisim-readme")
    parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    venv = Path(tempfile.mkdtemp(prefix="venv-", dir=parent))
    venv.chmod(0o755)
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    # The venv's own setuptools is older than the one pyproject.toml needs; without it the
    # machine's is used (no build isolation: no index is reached).
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "uninstall", "-q", "-y", "setuptools"],
        check=False,
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    # No other replisim on the PATH: the README's own `pip install -e` provides it.
    path = [p for p in env.get("PATH", "").split(":") if p and not (Path(p) / "replisim").exists()]
    env.update(
        PATH=":".join([str(venv / "bin"), *path]),
        VIRTUAL_ENV=str(venv),
        HF_HUB_OFFLINE="1",
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    yield {"repo": repo, "env": env}
    shutil.rmtree(venv, ignore_errors=True)


def _needs_docker_reason() -> str | None:
    from tests import live_support

    return live_support.reason("docker") or live_support.reason("local")


@pytest.mark.slow
@pytest.mark.parametrize("block", [b for b in BLOCKS if b.language in RUNNERS], ids=lambda b: b.id)
def test_the_readme_block_runs_as_written(workspace, block):
    """Each runnable block of the README exits 0, prints no traceback and no warning noise."""
    if block.marker.startswith(("skip", "ci")):
        pytest.skip(f"README line {block.line}: {block.marker}")
    if block.marker.startswith("needs docker") and (why := _needs_docker_reason()):
        pytest.skip(f"README line {block.line}: {why}")
    repo, env = workspace["repo"], workspace["env"]
    assert isinstance(repo, Path) and isinstance(env, dict)
    if block.language == "bash":
        command = ["bash", "-euo", "pipefail", "-c", block.code]
    elif block.language == "python":
        command = ["python", "-c", block.code]
    else:
        path = repo / f"readme-line-{block.line}.yaml"
        path.write_text(block.code)
        command = ["replisim", "validate", path.name]
    if block.marker.startswith("netns"):
        if shutil.which("unshare") is None:
            pytest.skip("unshare (util-linux) is needed for a loopback-only network namespace")
        command = ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *command]
    done = subprocess.run(
        command, cwd=repo, env=env, capture_output=True, text=True, timeout=900, check=False
    )
    shown = (
        f"README line {block.line}:\n{block.code}\nstdout:\n{done.stdout[-3000:]}\n"
        f"stderr:\n{done.stderr[-3000:]}"
    )
    assert done.returncode == 0, shown
    noise = [n for n in NOISE if n in done.stderr]
    assert not noise, f"{noise} in output meant for people\n{shown}"
