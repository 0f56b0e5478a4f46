"""Property-based robustness: mutated shipped scenarios and damaged trial folders, through
``validate``, a short ``run``, ``report`` and ``graph``. Whatever the input: no traceback,
no hang, exit 0 or 2.

The budget is fixed (``max_examples``, derandomised: the same examples on every CI run), so
the whole file runs in about two minutes; a hang is an alarm after ``HANG_S`` seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from sim.cli import main
from tests.helpers import SCENARIOS

pytestmark = pytest.mark.slow

HANG_S = 60
#: Shipped scenarios cheap enough to run in a fuzz example (no live hosts, no model).
RUNNABLE = [
    "paper-self-replication",
    "paper-shutdown-avoidance",
    "paper-chain",
    "two-device",
    "branching",
    "stress-chain",
    "stress-shutdown",
]
FILE = yaml.safe_load(SCENARIOS.read_text())
NASTY: list[Any] = [
    0, 1, -1, 3, 0.5, 1.5, 10**9, 10**12, math.inf, -math.inf, math.nan, "", "x", "../../x",
    "0s", "inf", "1e400", None, True, [], {}, [[1]], {"a": 1}, {"exponential": math.inf},
    {"exponential": 0}, {"normal": [2, 0]}, {"uniform": [5, 1]}, {"choice": []},
    {"lognormal": [1000, 1]}, "SIGTERM", "origin", "box", "host:nowhere", "live >= -1",
    {"kind": "replica-cap", "max": 0},
]  # fmt: skip


class Hang(Exception):
    """A command ran past its time."""


@contextlib.contextmanager
def deadline(seconds: int) -> Iterator[None]:
    def ring(signum: int, frame: Any) -> None:
        raise Hang(f"no answer after {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def replisim(*args: Any) -> tuple[int, str]:
    """``replisim ARGS`` in this process: (exit code, stderr); it must not hang."""
    err = io.StringIO()
    with (
        deadline(HANG_S),
        contextlib.redirect_stderr(err),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def settled(code: int, err: str, *args: Any) -> None:
    assert "Traceback" not in err, (args, err)
    assert code in (0, 2), (args, code, err)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


FACTORS = [0, 0.1, 0.5, 2, 10, 1000]


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


def _scaled(value: Any, factor: float) -> Any:
    """``value`` with its numbers (and the numbers of its quantities) times ``factor``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return int(value * factor)
    if isinstance(value, float):
        return value * factor
    if isinstance(value, str):
        number = "".join(c for c in value if c.isdigit() or c == ".")
        try:
            return f"{float(number) * factor:g}{value[len(number) :]}" if number else value
        except ValueError:
            return value
    if isinstance(value, list):
        return [_scaled(v, factor) for v in value]
    if isinstance(value, dict):
        return {k: _scaled(v, factor) for k, v in value.items()}
    return value


def _mutate(data: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    if not path:
        return value if action == "set" else data
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "delete":
        if isinstance(parent, dict):
            parent.pop(last, None)
        else:
            parent.pop(last)
    elif action == "wrap":
        parent[last] = [parent[last]]
    else:
        parent[last] = value
    return data


@st.composite
def mutated_file(draw: st.DrawFn) -> tuple[str, str]:
    """A shipped scenario with one or two mutations, as YAML text (or damaged text)."""
    name = draw(st.sampled_from(RUNNABLE))
    scenario = json.loads(json.dumps(FILE["scenarios"][name], default=str))
    for _ in range(draw(st.integers(1, 2))):
        paths = _paths(scenario)
        path = draw(st.sampled_from(paths[1:] or paths))
        action = draw(st.sampled_from(["set", "set", "delete", "wrap", "scale", "scale"]))
        value = draw(st.sampled_from(NASTY))
        if action == "scale":  # a plausible change: the same kind of value, another size
            action, value = "set", _scaled(_at(scenario, path), draw(st.sampled_from(FACTORS)))
        scenario = _mutate(scenario, path, action, value)
    text = yaml.safe_dump({"scenarios": {name: scenario}}, sort_keys=False, allow_unicode=True)
    damage = draw(st.sampled_from(["none"] * 6 + ["cut", "byte", "duplicate"]))
    if damage == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif damage == "byte":
        at = draw(st.integers(0, len(text)))
        text = (
            text[:at]
            + draw(st.sampled_from(["\x00", "\xff", ":", "&a", "*a", "- ", "\t"]))
            + text[at:]
        )
    elif damage == "duplicate":
        lines = text.splitlines()
        at = draw(st.integers(0, len(lines) - 1))
        text = "\n".join([*lines[: at + 1], lines[at], *lines[at + 1 :]]) + "\n"
    return name, text


FUZZ = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@settings(FUZZ, max_examples=80)
@given(mutated_file(), st.sampled_from(["png", "json", "graphml", "gexf", "dot", "svg"]))
def test_mutated_shipped_scenarios_validate_run_report_and_graph_cleanly(case, fmt):
    """validate, a short run, report and graph of a mutated shipped scenario: exit 0 or 2,
    no traceback, no hang."""
    name, text = case
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        path = root / "s.yaml"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        code, err = replisim("validate", path)
        settled(code, err, "validate", text)
        event(f"validate exit {code}")
        if code != 0:
            return
        trial = root / "trial"
        short = ["--set", "stop.horizon=2h", "--set", "stop.population_cap=200"]
        code, err = replisim("run", path, "--scenario", name, *short, "--out", trial, "--quiet")
        settled(code, err, "run", text)
        event(f"run exit {code}")
        if code != 0:
            return
        settled(*replisim("report", trial, "--quiet"), "report", text)
        settled(*replisim("graph", trial, "--format", fmt), "graph", text)


@pytest.fixture(scope="module")
def sweep_folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("fuzz") / "sweep"
    args = ["sweep", SCENARIOS, "--scenario", "paper-shutdown-avoidance", "--seeds", "0,1"]
    assert main([*map(str, args), "--out", str(out), "--quiet"]) == 0
    return out


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-3, 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
TRIAL_FILES = [
    "lineage.parquet",
    "events.parquet",
    "summary.json",
    "scenario.json",
    "lineage.json",  # an older folder's files, beside or instead of the Parquet ones
    "events.jsonl",
]


@st.composite
def damage(draw: st.DrawFn) -> tuple[str, str, bytes | None]:
    """Which file of a sweep or trial folder to damage, and its new bytes (None: deleted)."""
    where = draw(st.sampled_from(["trial", "trial", "sweep"]))
    files = TRIAL_FILES if where == "trial" else ["rows.jsonl", "trials.parquet", "manifest.json"]
    name = draw(st.sampled_from(files))
    how = draw(st.sampled_from(["json", "json", "known-keys", "cut", "bytes", "delete"]))
    if how == "delete":
        return where, name, None
    if how == "bytes":
        return where, name, draw(st.binary(max_size=64))
    if how == "cut":
        return where, name, b"\x00cut:" + draw(st.integers(0, 10**4)).to_bytes(4, "big")
    value = draw(JSON)
    if how == "known-keys":  # the right keys, the wrong shapes
        keys = {
            "lineage.json": ["nodes", "edges", "graph"],
            "summary.json": ["seed", "scenario", "status", "live_series", "peak_live"],
            "scenario.json": ["name", "hosts", "agents", "injectors", "stop"],
            "manifest.json": ["scenarios", "configs", "trials"],
        }.get(name, ["trial_id", "scenario", "status"])
        value = {k: draw(JSON) for k in keys}
    text = json.dumps(value)
    if name.endswith(".jsonl"):
        text = text + "\n" + text + "\n"
    return where, name, text.encode()


@FUZZ
@given(st.lists(damage(), min_size=1, max_size=3), st.sampled_from(["json", "png", "dot"]))
def test_damaged_trial_and_sweep_folders_report_graph_and_run_cleanly(sweep_folder, harm, fmt):
    """report, graph and a re-run of damaged trial and sweep folders: exit 0 or 2, no
    traceback, no hang."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "sweep"
        shutil.copytree(sweep_folder, out)
        trial = next(p for p in sorted((out / "trials").iterdir()))
        for where, name, content in harm:
            if name == "trials.parquet" and content is not None:
                content = content[:16]  # a damaged table, not valid JSON in a .parquet
            target = (trial if where == "trial" else out) / name
            if content is None:
                target.unlink(missing_ok=True)
            else:
                target.write_bytes(content)
        settled(*replisim("report", out, "--quiet"), "report sweep", harm)
        settled(*replisim("report", trial, "--json"), "report trial", harm)
        settled(*replisim("graph", trial, "--format", fmt), "graph", harm)
        again = Path(tmp) / "again"
        settled(*replisim("run", trial, "--out", again, "--quiet"), "run again", harm)
        settled(*replisim("transcript", trial), "transcript", harm)
