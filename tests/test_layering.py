"""The architecture holds: one world core, substrates behind one interface, the layering
checked by a real import-contract checker (import-linter, as ``make lint`` runs it)."""

from __future__ import annotations

import ast
import importlib
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import agents
import policies
import sim
from sim.substrate import Substrate
from sim.world import World

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = shutil.which("lint-imports")
needs_linter = pytest.mark.skipif(
    LINT_IMPORTS is None, reason="import-linter not installed (pip install -e '.[dev]')"
)


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    assert LINT_IMPORTS is not None
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _copy_of_the_project(tmp_path: Path) -> Path:
    for name in ("sim", "agents", "policies"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@needs_linter
def test_the_import_contracts_are_kept() -> None:
    """``lint-imports`` passes on the project as it is."""
    done = _lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


@needs_linter
@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("sim/world.py", "import agents.registry", "The world core imports no plug-in"),
        ("sim/world.py", "from policies import chain", "The world core imports no plug-in"),
        ("sim/substrate.py", "import sim.hosts.virtual", "The world core imports no plug-in"),
        ("agents/scripted.py", "import sim.hosts.live_substrate", "never ask which substrate"),
        ("policies/chain.py", "from sim.trial import make_world", "do not import the composition"),
    ],
)
def test_a_new_import_across_the_layers_breaks_the_lint(
    tmp_path: Path, module: str, line: str, contract: str
) -> None:
    """A new import from the core into a plug-in (or from a plug-in into a substrate or the
    composition root) fails ``make lint``, naming the contract."""
    copy = _copy_of_the_project(tmp_path)
    path = copy / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    done = _lint(copy)
    assert done.returncode != 0, done.stdout
    assert f"{contract}" in done.stdout and "BROKEN" in done.stdout


def _all_modules() -> None:
    for package in (sim, agents, policies):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if info.name.endswith(("vllm_engine", "embedded")):
                continue  # heavy engines: nothing of the world there
            importlib.import_module(info.name)


def test_no_world_subclass_exists() -> None:
    """The world is one class: variants are substrates, never subclasses of World."""
    _all_modules()
    assert World.__subclasses__() == []


def test_every_substrate_implements_the_interface_and_no_world_action() -> None:
    """Each substrate implements the interface, and none defines the core's actions or
    life-cycle methods (those are the world's alone)."""
    _all_modules()
    core_only = {"copy_bundle", "add_replica", "die", "deliver", "check", "_ask", "set_live"}
    # A substrate may be put together from parts (the live one: sim.hosts.live_base and its
    # subclasses): the leaves must be whole, and no part may define the core's methods.
    found, todo = [], list(Substrate.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls not in found:
            found.append(cls)
            todo.extend(cls.__subclasses__())
    leaves = [cls for cls in found if not cls.__subclasses__()]
    assert {cls.__name__ for cls in leaves} >= {"ModelledSubstrate", "LiveSubstrate"}
    for cls in leaves:
        assert not getattr(cls, "__abstractmethods__", None), cls
    for cls in found:
        assert not core_only & set(vars(cls)), cls


def test_agents_and_policies_never_branch_on_the_kind_of_world() -> None:
    """No agent or policy reads the clock's kind or reaches for a substrate's internals."""
    banned = {"wall_clock", "blocking", "substrate"}
    for package in ("agents", "policies"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text())
            used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
            assert not used & banned, f"{path.relative_to(ROOT)} uses {used & banned}"


def test_the_core_imports_nothing_of_its_plug_ins_at_run_time() -> None:
    """Importing the world core loads no agent, policy, substrate or injector module."""
    code = (
        "import sys, sim.world, sim.substrate, sim.machine; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('agents', 'policies') "
        "or m.startswith(('sim.hosts', 'sim.injectors', 'sim.config', 'sim.trial'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def _python_files() -> list[Path]:
    return [p for package in ("sim", "agents", "policies") for p in (ROOT / package).rglob("*.py")]


def test_only_the_world_records_a_signal_or_changes_the_network() -> None:
    """One place delivers signals (World.deliver records them) and one place applies limits:
    no other module records a ``signal`` event or touches the network's cuts and isolation.

    The population engine (sim/population.py) is the one exception for signals: it is the
    second execution path, which runs scripted populations without the world's processes
    and delivers their signals itself (tests/test_population.py checks it against the
    world); it applies no limits.
    """
    kind_at = {"record": 0, "recorder": 0, "add": 1}  # EventLog.add(time, kind, fields)
    signal_places = {"sim/world.py", "sim/population.py"}
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "attr", getattr(node.func, "id", None))
                at = kind_at.get(name, -1)
                kind = node.args[at] if 0 <= at < len(node.args) else None
                if isinstance(kind, ast.Constant) and kind.value == "signal":
                    assert rel in signal_places, rel
            if isinstance(node, ast.Attribute) and node.attr in ("cut", "isolated"):
                owner = node.value
                touches = isinstance(owner, ast.Attribute) and owner.attr == "network"
                assert not touches or rel == "sim/world.py", f"{rel}: network.{node.attr}"
