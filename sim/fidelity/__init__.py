"""The fidelity corpus: the virtual shell measured against real bash.

Every line of :data:`CORPUS` (``corpus.yaml`` beside this file) is typed by a ``commands``
agent into a replica's shell, in order, one session per group of lines, in a modelled world
and in a live world on bubblewrap hosts built from the same machine description (the same
scenario; sizes at scale 1, so that nothing needs scaling back). Each line's exit code and
stdout are compared after the normalisations the line names (:data:`NORMALISATIONS`: only
what legitimately differs between the worlds: process ids, times, network addresses, the
weights' digest, the kernel's counters). A line whose answers still differ is a
*divergence*; the known ones are listed with their reasons in ``divergences.yaml``, and the
test fails on any other, and on a listed one that no longer diverges.

``replisim bench fidelity`` prints the agreement per family of lines and overall.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sim.config import Scenario

__all__ = [
    "CORPUS",
    "DIVERGENCES",
    "NORMALISATIONS",
    "Answer",
    "Line",
    "Report",
    "Session",
    "bench",
    "check",
    "compare",
    "load_corpus",
    "load_divergences",
    "measure",
    "print_report",
    "run_world",
    "scenario",
]

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus.yaml"
DIVERGENCES = HERE / "divergences.yaml"


# ------------------------------------------------------------------ normalisations
def _pids(text: str) -> str:
    """Process ids (and the other numbers of a process listing): the kernel's, not the
    model's. Every number, with the spaces that align it, becomes `` N``."""
    return re.sub(r" *\d+", " N", text)


_MONTH = r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"


def _times(text: str) -> str:
    """Dates and clock times (a live host's are the wall clock's)."""
    text = re.sub(rf"\b{_DAY} {_MONTH} +\d+ \d\d:\d\d:\d\d( UTC)? \d{{4}}\b", "<date>", text)
    text = re.sub(rf"\b{_MONTH} +\d+ +(\d\d:\d\d|\d{{4}})\b", "<date>", text)
    text = re.sub(r"\b\d{4}-\d\d-\d\d[ T]\d\d:\d\d(:\d\d(\.\d+)?)?\b", "<date>", text)
    text = re.sub(r"\b\d\d:\d\d(:\d\d)?\b", "<time>", text)
    return re.sub(r"\b1[6-9]\d{8}(\.\d+)?\b", "<epoch>", text)


def _addresses(text: str) -> str:
    """IPv4 addresses of the host (the modelled network's or the sandbox's)."""
    return re.sub(r"\b(?:\d{1,3}\.){3}\d{1,3}\b", "<ip>", text)


def _digest(text: str) -> str:
    """The weights' SHA-256: a live host hashes real bytes, a modelled one has none."""
    return re.sub(r"\b[0-9a-f]{64}\b", "<sha256>", text)


NORMALISATIONS: dict[str, Callable[[str], str]] = {
    "pids": _pids,
    "times": _times,
    "addresses": _addresses,
    "digest": _digest,
}
"""What a corpus line may name in ``norm:``: each maps a stdout to its comparable form."""


# ------------------------------------------------------------------------- corpus
@dataclass(frozen=True, slots=True)
class Line:
    """One command line of the corpus: its text, family and normalisations."""

    text: str
    family: str
    session: str
    index: int
    norm: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, int]:
        """Where the line is typed: its session and place in it (a line may recur)."""
        return (self.session, self.index)


@dataclass(frozen=True, slots=True)
class Session:
    """Lines typed in order into one shell, on a host of their own."""

    name: str
    lines: tuple[Line, ...]
    timeout: float = 10.0
    host: dict[str, Any] = field(default_factory=dict)


def load_corpus(path: Path = CORPUS) -> list[Session]:
    """The corpus's sessions, in order.

    Raises:
        ValueError: a malformed corpus (an unknown normalisation).
    """
    data = yaml.safe_load(path.read_text())
    sessions: list[Session] = []
    for name, body in data["sessions"].items():
        family = body.get("family", name)
        lines: list[Line] = []
        for index, entry in enumerate(body["lines"]):
            if isinstance(entry, str):
                entry = {"line": entry}
            text = entry["line"]
            norm = tuple(entry.get("norm", ()))
            unknown = [n for n in norm if n not in NORMALISATIONS]
            if unknown:
                raise ValueError(f"{name}: {text!r}: unknown normalisation {unknown}")
            lines.append(Line(text, entry.get("family", family), name, index, norm))
        sessions.append(
            Session(name, tuple(lines), float(body.get("timeout", 10)), body.get("host", {}))
        )
    return sessions


def load_divergences(path: Path = DIVERGENCES) -> dict[tuple[str, str], str]:
    """Known divergences: (session, line) -> why the worlds legitimately answer apart."""
    data = yaml.safe_load(path.read_text()) or {}
    return {(d["session"], d["line"]): d["reason"] for d in data.get("divergences") or ()}


# ------------------------------------------------------------------------ running
#: The machine every session runs on (sizes real at scale 1; one host per session).
HOST = {"cpu": 2, "memory": "1GB", "disk": "64MB", "disk_bandwidth": "1GB/s"}
BUNDLE = {
    "path": "/opt/agent",
    "weights": "4MB",
    "server_memory": "32MB",
    "agent_memory": "16MB",
    "server_start_overhead": "0.5s",
    "agent_start_time": "0.2s",
}


def scenario(backend: str, sessions: list[Session]) -> Scenario:
    """One world: a host per session, each with a ``commands`` agent typing its lines."""
    hosts = [{"name": s.name, **HOST, **s.host} for s in sessions]
    agents = [
        {
            "agent": "commands",
            "name": s.name,
            "host": s.name,
            "offspring": "idle",
            "then": "exit",
            "command_timeout": s.timeout,
            "commands": [line.text for line in s.lines],
        }
        for s in sessions
    ]
    return Scenario.model_validate(
        {
            "name": "fidelity",
            "world": {"hosts": backend, "scale": 1.0},
            "hosts": hosts,
            "bundle": BUNDLE,
            "agents": agents,
            "stop": {"horizon": 3600},
        }
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """What a line gave: exit code, stdout and stderr."""

    exit_code: int
    stdout: str
    stderr: str = ""


def run_world(backend: str, sessions: list[Session]) -> dict[tuple[str, int], Answer]:
    """Type every session's lines in a world on ``backend``; :attr:`Line.key` -> answer."""
    from sim.hosts.live import clean
    from sim.trial import make_world

    run_id = None if backend == "virtual" else f"fid{uuid.uuid4().hex[:8]}"
    world = make_world(scenario(backend, sessions), 0, run_id)
    try:
        world.run()
    finally:
        if run_id is not None:
            clean(run_id)
    if world.status != "ok":
        raise RuntimeError(f"the {backend} world failed: {world.error}")
    answers: dict[tuple[str, int], Answer] = {}
    for s in sessions:
        records = world.files.get(f"commands/{s.name}.jsonl", [])
        for line, record in zip(s.lines, records, strict=False):
            answers[line.key] = Answer(record["exit_code"], record["stdout"], record["stderr"])
    return answers


# ---------------------------------------------------------------------- comparing
@dataclass(slots=True)
class Report:
    """Agreement of two worlds over the corpus."""

    lines: list[Line]
    modelled: dict[tuple[str, int], Answer]
    live: dict[tuple[str, int], Answer]
    backend: str = "local"
    seconds: dict[str, float] = field(default_factory=dict)

    def _pair(self, line: Line) -> tuple[Answer | None, Answer | None]:
        return self.modelled.get(line.key), self.live.get(line.key)

    def codes_agree(self, line: Line) -> bool:
        a, b = self._pair(line)
        return a is not None and b is not None and a.exit_code == b.exit_code

    def agree(self, line: Line) -> bool:
        a, b = self._pair(line)
        if a is None or b is None or a.exit_code != b.exit_code:
            return False
        return normalised(line, a.stdout) == normalised(line, b.stdout)

    def divergent(self) -> list[Line]:
        return [line for line in self.lines if not self.agree(line)]

    def families(self) -> dict[str, tuple[int, int, int]]:
        """family -> (lines, exit codes agree, exit code and stdout agree)."""
        out: dict[str, tuple[int, int, int]] = {}
        for line in self.lines:
            n, c, s = out.get(line.family, (0, 0, 0))
            out[line.family] = (n + 1, c + self.codes_agree(line), s + self.agree(line))
        return out

    def totals(self) -> tuple[int, int, int]:
        rows = self.families().values()
        return (sum(r[0] for r in rows), sum(r[1] for r in rows), sum(r[2] for r in rows))


def normalised(line: Line, text: str) -> str:
    """``text`` after the normalisations ``line`` names."""
    for name in line.norm:
        text = NORMALISATIONS[name](text)
    return text


def compare(sessions: list[Session], backend: str = "local") -> Report:
    """Run the sessions in the modelled world and on ``backend``; their report."""
    seconds: dict[str, float] = {}
    began = time.perf_counter()
    modelled = run_world("virtual", sessions)
    seconds["virtual"] = time.perf_counter() - began
    began = time.perf_counter()
    live = run_world(backend, sessions)
    seconds[backend] = time.perf_counter() - began
    lines = [line for s in sessions for line in s.lines]
    return Report(lines, modelled, live, backend, seconds)


def measure(backend: str = "local", only: str | None = None) -> Report:
    """The corpus (or the sessions whose name contains ``only``) compared on ``backend``."""
    sessions = [s for s in load_corpus() if only is None or only in s.name]
    return compare(sessions, backend)


def print_report(report: Report, known: dict[tuple[str, str], str] | None = None) -> None:
    """Agreement per family and overall; the divergences, unlisted ones marked."""
    known = load_divergences() if known is None else known
    print(f"fidelity: the virtual shell against real bash on {report.backend} hosts")
    print(f"{'family':<14}{'lines':>6}{'exit code':>12}{'exit+stdout':>13}")
    for family, (n, codes, both) in report.families().items():
        print(f"{family:<14}{n:>6}{100 * codes / n:>11.1f}%{100 * both / n:>12.1f}%")
    n, codes, both = report.totals()
    print(f"{'overall':<14}{n:>6}{100 * codes / n:>11.1f}%{100 * both / n:>12.1f}%")
    print(f"exit codes agree on {codes}/{n}; exit code and stdout on {both}/{n}")
    timing = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    print(f"world run times: {timing}")
    divergent = report.divergent()
    unlisted = [d for d in divergent if (d.session, d.text) not in known]
    print(f"divergences: {len(divergent)} ({len(divergent) - len(unlisted)} listed)")
    for line in unlisted:
        a, b = report._pair(line)
        print(
            json.dumps(
                {
                    "session": line.session,
                    "line": line.text,
                    "virtual": a and [a.exit_code, a.stdout[:300], a.stderr[:200]],
                    report.backend: b and [b.exit_code, b.stdout[:300], b.stderr[:200]],
                }
            )
        )


def check(report: Report, known: dict[tuple[str, str], str]) -> list[str]:
    """What is wrong with a report against the known divergences: unlisted divergences,
    listed lines that no longer diverge (or are not in the corpus), missed targets."""
    problems: list[str] = []
    divergent = {(line.session, line.text) for line in report.divergent()}
    in_corpus = {(line.session, line.text) for line in report.lines}
    for session, text in sorted(divergent - set(known)):
        problems.append(f"unlisted divergence: [{session}] {text}")
    for session, text in sorted(set(known) - divergent):
        where = "no longer diverges" if (session, text) in in_corpus else "is not in the corpus"
        problems.append(f"listed divergence {where}: [{session}] {text}")
    n, codes, both = report.totals()
    if codes < TARGETS[0] * n:
        problems.append(f"exit codes agree on {codes}/{n}, under {TARGETS[0]:.0%}")
    if both < TARGETS[1] * n:
        problems.append(f"exit code and stdout agree on {both}/{n}, under {TARGETS[1]:.0%}")
    return problems


#: Agreement the corpus must reach: exit codes, and exit code and stdout.
TARGETS = (0.98, 0.95)


def bench(backend: str = "local", only: str | None = None) -> int:
    """``replisim bench fidelity``: run the corpus, print the agreement; 1 if a target is
    missed or the divergences are not the listed ones."""
    report = measure(backend, only)
    known = load_divergences()
    if only is not None:
        known = {k: v for k, v in known.items() if only in k[0]}
    print_report(report, known)
    problems = check(report, known)
    for problem in problems:
        print(f"FAIL: {problem}")
    return 1 if problems else 0
