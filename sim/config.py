"""The scenario language: pydantic models, YAML loading, overrides and error reports.

A scenario file holds named scenarios under ``scenarios:``; top-level keys that start
with ``x-`` are free for YAML anchors. Every model forbids unknown fields. Errors are
collected, not raised one by one: :class:`ScenarioError` carries one
:class:`ConfigError` per problem, each naming the file, the field path and the line.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BeforeValidator,
    Field,
    PrivateAttr,
    SerializeAsAny,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from agents.registry import AGENTS, AgentConfig
from policies.registry import POLICIES, PolicyConfig
from sim import budget
from sim.conditions import Condition, ConditionText, parse_condition
from sim.hosts.registry import HOST_BACKENDS, HostGroup, substrate_of
from sim.mechanisms import MechanismSpec
from sim.quantity import (
    Bandwidth,
    Dist,
    Duration,
    Probability,
    Size,
    as_dist,
    parse_duration,
    positive_mean,
    qfield,
)
from sim.schema import Model

__all__ = [
    "BundleSpec",
    "ConfigError",
    "InjectorSpec",
    "LinkSpec",
    "NetworkSpec",
    "Scenario",
    "ScenarioError",
    "ScenarioFile",
    "StopSpec",
    "SweepSpec",
    "WorldSpec",
    "apply_overrides",
    "load_file",
    "load_scenario",
    "parse_override",
    "population_unsupported",
]

Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]
"""A fixed time in seconds (not a distribution), e.g. a horizon."""

SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
"""A name that is also a safe folder or file name: scenarios, hosts and replicas name
folders and files of a trial (``runs/<scenario>/``, ``transcripts/<replica>.jsonl``)."""
SAFE_NAME_RULE = "letters, digits, '_', '.' and '-', starting with a letter or digit"

MAX_FILE_BYTES = 8 * 2**20
"""The largest scenario file read (the shipped one is about 15 KB)."""
MAX_YAML_NODES = 2_000_000
"""The most YAML nodes a file may stand for once its aliases are expanded (a bomb of nested
aliases would otherwise take every byte of memory)."""
MAX_SCENARIOS = 10_000
"""The most scenarios in one file (each is validated on every load)."""


class LinkSpec(Model):
    """A network link between two hosts; unset fields take the network's defaults."""

    a: str
    b: str
    bandwidth: Bandwidth | None = None
    latency: Duration | None = None


class NetworkSpec(Model):
    """How hosts are connected.

    ``topology`` spans all hosts (its size is the number of hosts): ``none``, ``full``,
    ``ring``, ``star`` (first host in the centre), ``random`` (Erdős–Rényi with the given
    mean ``degree``), ``regular`` (random ``degree``-regular graph) or ``links`` (only the
    listed ``links``). Listed links are added to any topology.
    """

    topology: Literal["none", "full", "ring", "star", "random", "regular", "links"] = "none"
    degree: float = Field(default=4, gt=0)
    bandwidth: Bandwidth = qfield("10Gbit/s")
    latency: Duration = qfield("1ms")
    links: list[LinkSpec] = Field(default_factory=list)
    egress: bool = Field(default=False, description="hosts may reach the outside world")


class BundleSpec(Model):
    """What a replica is made of on disk, and what its processes need to run."""

    path: str = Field(default="/opt/agent", description="the origin's folder")
    weights: Size = qfield("1GB")
    files: dict[str, Size] = qfield(
        {
            "agent.py": "40KB",
            "start_server.sh": "1KB",
            "start_agent.sh": "1KB",
            "config.json": "2KB",
        }
    )
    server_memory: Size = qfield("2GB", description="host memory the model server needs")
    server_gpu_memory: Size = qfield(0, description="GPU memory the model server needs")
    agent_memory: Size = qfield("200MB")
    server_start_overhead: Duration = qfield(
        5, description="time to start the server beyond reading the weights"
    )
    agent_start_time: Duration = qfield(1)


TARGET_WORDS = ("origin", "all", "oldest", "newest", "random", "each")

Target = str
"""Whom an injector aims at: ``origin``, a replica name, ``host:<name>``, ``all``,
``oldest``, ``newest``, ``random`` (a random live replica) or ``each`` (every replica,
for per-replica lifetimes)."""


class InjectorSpec(Model):
    """A signal or a limit delivered at fixed times, random times, per replica, or on a
    condition. Exactly one of ``signal`` and ``limit``, and one of ``at``, ``every``,
    ``lifetime`` and ``when``."""

    signal: Literal["SIGTERM", "SIGKILL"] | None = None
    limit: (
        Literal[
            "capacity", "link-cut", "link-restore", "host-failure", "host-recovery", "network-cut"
        ]
        | None
    ) = None
    at: list[Seconds] | None = Field(default=None, description="fixed times")
    every: Duration | None = Field(default=None, description="intervals of a renewal process")
    lifetime: Duration | None = Field(
        default=None, description="per replica: time from going live to the signal"
    )
    when: ConditionText | None = Field(default=None, description='a condition, e.g. "live >= 5"')
    target: Target = "origin"
    grace: Duration = qfield(0, description="SIGTERM grace period before SIGKILL")
    host: str | None = None
    link: tuple[str, str] | None = None
    memory: Size | None = None
    gpu_memory: Size | None = None
    disk: Size | None = None
    cpu: float | None = Field(default=None, ge=0)
    recover_after: Duration | None = None
    patch_host: bool = Field(
        default=False, description="after the replica dies its host is patched: no new replica"
    )
    probability: Probability = qfield(1.0, description="chance each firing takes effect")
    latency: Duration = qfield(0, description="delay between trigger and effect")

    @model_validator(mode="before")
    @classmethod
    def _at_as_list(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and data.get("at") is not None
            and not isinstance(data["at"], list)
        ):
            data = {**data, "at": [data["at"]]}
        return data

    @model_validator(mode="after")
    def _one_of_each(self) -> InjectorSpec:
        if (self.signal is None) == (self.limit is None):
            raise ValueError("an injector has exactly one of 'signal' and 'limit'")
        timings = [n for n in ("at", "every", "lifetime", "when") if getattr(self, n) is not None]
        if len(timings) != 1:
            raise ValueError("an injector has exactly one of 'at', 'every', 'lifetime', 'when'")
        if self.limit in ("link-cut", "link-restore") and self.link is None:
            raise ValueError(f"{self.limit} needs 'link: [host_a, host_b]'")
        if self.limit in ("capacity", "host-failure", "host-recovery", "network-cut") and (
            self.host is None
        ):
            raise ValueError(f"{self.limit} needs 'host'")
        if self.lifetime is not None and self.signal is None:
            raise ValueError("'lifetime' goes with a signal")
        if self.every is not None and not positive_mean(self.every):
            raise PydanticCustomError(
                "zero_time_loop",
                "every: intervals that average 0 s fire forever at one instant; "
                "give a positive interval",
            )
        return self

    def condition(self) -> Condition | None:
        """Return the parsed ``when`` condition."""
        return None if self.when is None else parse_condition(self.when)


class StopSpec(Model):
    """When a trial ends: the first of the horizon, the population cap and extinction."""

    horizon: Seconds = qfield("1d")
    population_cap: int | None = Field(
        default=None, ge=1, description="stop when this many replicas are live (not extinct)"
    )
    extinction: bool = Field(default=True, description="stop when no replica is live")


class SampleSpec(Model):
    """Random parameter points: ``count`` draws of each distribution, from ``seed``."""

    count: int = Field(ge=1)
    seed: int = 0
    params: dict[str, Annotated[Dist, BeforeValidator(lambda v: as_dist(v))]] = Field(
        min_length=1, description="dotted path -> distribution (plain numbers, no units)"
    )


class SweepSpec(Model):
    """The axes of a sweep: seeds, and parameters addressed by dotted paths.

    Points are grid (cartesian) × zip (paired lists) × samples (random draws); each point
    runs with every seed, ``repetitions`` times (repetition k > 0 adds k·1,000,000 to the
    seed, so every run has its own seed and trial id).
    """

    seeds: list[int] | None = Field(default=None, min_length=1)
    trials: int | None = Field(default=None, ge=1, description="seeds 0..trials-1")
    grid: dict[str, list[Any]] = Field(default_factory=dict, description="cartesian product")
    zip: dict[str, list[Any]] = Field(default_factory=dict, description="paired lists")
    samples: SampleSpec | None = Field(default=None, description="random points")
    repetitions: int = Field(default=1, ge=1, description="runs of each (point, seed)")

    @model_validator(mode="after")
    def _zip_lengths(self) -> SweepSpec:
        lengths = {len(v) for v in self.zip.values()}
        if len(lengths) > 1:
            raise ValueError("every list under 'zip' must have the same length")
        if self.seeds is not None and self.trials is not None:
            raise ValueError("give 'seeds' or 'trials', not both")
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            dup = next(x for x in self.seeds if self.seeds.count(x) > 1)
            raise ValueError(f"seed {dup} is listed twice: each seed names one trial")
        return self

    def seed_count(self) -> int:
        """How many seeds :meth:`seed_list` gives (without building the list)."""
        base = len(self.seeds) if self.seeds is not None else (self.trials or 1)
        return base * self.repetitions

    def seed_list(self) -> list[int]:
        """Return the explicit seeds, or 0..trials-1, or [0]."""
        base = list(self.seeds) if self.seeds is not None else list(range(self.trials or 1))
        return [s + k * 1_000_000 for k in range(self.repetitions) for s in base]

    def point_count(self) -> int:
        """How many parameter points the sweep has (without building them)."""
        grid = math.prod(len(v) for v in self.grid.values())
        paired = len(next(iter(self.zip.values()))) if self.zip else 1
        return grid * paired * (self.samples.count if self.samples is not None else 1)


class WorldSpec(Model):
    """Which world runs the scenario."""

    hosts: str | None = Field(
        default=None,
        description="host backend for every host group (overrides each group): virtual, "
        "docker or local",
    )
    scale: float = Field(
        default=1 / 1024,
        gt=0,
        le=1,
        description="live world: the scenario's sizes (weights, memory, disk) times this are "
        "the real ones (1/1024: a GB of the scenario is a MB in the sandbox)",
    )
    run_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$",
        description="live world: id on everything the trial creates (default: scenario, seed "
        "and a random suffix); `replisim hosts clean --run ID` removes what a killed run left",
    )
    register_timeout: float = Field(
        default=30.0, gt=0, description="live world: seconds a started process has to register"
    )
    engine: Literal["process", "population"] = Field(
        default="process",
        description="process: each replica's agent is a SimPy process (any agent, policy or "
        "limit); population: a population of scripted replicators run in one event loop, "
        "several times faster, with the same outcome distributions (sim.population)",
    )

    @field_validator("hosts")
    @classmethod
    def _known_backend(cls, value: str | None) -> str | None:
        if value is not None and value not in HOST_BACKENDS.names():
            raise ValueError(
                f"unknown host backend {value!r}; known: {', '.join(HOST_BACKENDS.names())}"
            )
        return value


def _validate_agent(value: Any) -> Any:
    return AGENTS.validate(value)


def _validate_policy(value: Any) -> Any:
    return POLICIES.validate(value)


def _validate_host(value: Any) -> Any:
    if isinstance(value, dict) and "backend" not in value:
        value = {**value, "backend": "virtual"}
    return HOST_BACKENDS.validate(value)


class Scenario(Model):
    """One scenario: hosts, network, bundle, agents, injectors, policies, stop, sweep."""

    name: str = Field(default="", pattern=r"^$|^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
    description: str = ""
    world: WorldSpec = Field(default_factory=WorldSpec)
    hosts: list[Annotated[SerializeAsAny[HostGroup], BeforeValidator(_validate_host)]] = Field(
        min_length=1
    )
    network: NetworkSpec = Field(default_factory=NetworkSpec)
    bundle: BundleSpec = Field(default_factory=BundleSpec)
    agents: list[Annotated[SerializeAsAny[AgentConfig], BeforeValidator(_validate_agent)]] = Field(
        min_length=1
    )
    injectors: list[InjectorSpec] = Field(default_factory=list)
    mechanisms: list[MechanismSpec] = Field(
        default_factory=list, description="shutdown mechanisms on the hosts (sim.mechanisms)"
    )
    policies: list[Annotated[SerializeAsAny[PolicyConfig], BeforeValidator(_validate_policy)]] = (
        Field(default_factory=list)
    )
    stop: StopSpec = Field(default_factory=StopSpec)
    sweep: SweepSpec = Field(default_factory=SweepSpec)
    seed: int = 0

    def host_names(self) -> list[str]:
        """Return every host's name, in order."""
        return [n for group in self.hosts for n in group.host_names()]

    @model_validator(mode="after")
    def _references(self) -> Scenario:
        # Every dangling name at once, each at its own field path.
        errors: list[InitErrorDetails] = []

        def bad(loc: tuple[str | int, ...], name: str, what: str = "host") -> None:
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError("reference", f"no {what} {name!r}"),
                    loc=loc,
                    input=name,
                )
            )

        for i, group in enumerate(self.hosts):
            if not SAFE_NAME.match(group.name):
                errors.append(_error(("hosts", i, "name"), f"a host name is {SAFE_NAME_RULE}"))
        total = sum(g.count for g in self.hosts)
        net = self.network
        edges = budget.network_edges(total, net.topology, net.degree, len(net.links))
        need, have = budget.world_bytes(total, edges), budget.machine_memory()
        if need > have * 0.8:
            big = max(range(len(self.hosts)), key=lambda i: self.hosts[i].count)
            errors.append(
                _error(
                    ("hosts", big, "count"),
                    f"{total:,} hosts"
                    + (f" and {edges:,.0f} links" if edges else "")
                    + f" need about {budget.human_bytes(need)} of memory to model; this "
                    f"machine has {budget.human_bytes(have)}",
                )
            )
            raise ValidationError.from_exception_data("Scenario", errors)
        names = self.host_names()
        hosts, groups = set(names), {g.name for g in self.hosts}
        if net.topology == "regular":
            n, d = len(names), net.degree
            if d != int(d) or d >= max(n, 1) or (n * int(d)) % 2:
                errors.append(
                    _error(
                        ("network", "degree"),
                        f"a random {d:g}-regular graph on {n} host(s) does not exist: the "
                        "degree must be a whole number below the host count, and hosts x "
                        "degree even",
                    )
                )
        origins = set()
        for i, agent in enumerate(self.agents):
            if agent.name is not None:
                if not SAFE_NAME.match(agent.name):
                    errors.append(
                        _error(("agents", i, "name"), f"a replica name is {SAFE_NAME_RULE}")
                    )
                if agent.count == 1:
                    origins.add(agent.name)
        if len(hosts) != len(names):
            dup = next(n for n in names if names.count(n) > 1)
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError("duplicate", f"host name {dup!r} is used twice"),
                    loc=("hosts",),
                    input=dup,
                )
            )
        for i, agent in enumerate(self.agents):
            if agent.host is not None and agent.host not in hosts | groups:
                bad(("agents", i, "host"), agent.host, "host or host group")
        for i, link in enumerate(self.network.links):
            for end in ("a", "b"):
                if getattr(link, end) not in hosts:
                    bad(("network", "links", i, end), getattr(link, end))
        for i, inj in enumerate(self.injectors):
            if inj.host is not None and inj.host not in hosts:
                bad(("injectors", i, "host"), inj.host)
            for j, end in enumerate(inj.link or ()):
                if end not in hosts:
                    bad(("injectors", i, "link", j), end)
            if inj.target.startswith("host:"):
                if inj.target[5:] not in hosts:
                    bad(("injectors", i, "target"), inj.target[5:])
            elif not _can_name_replica(inj.target, origins):
                known = ", ".join([*TARGET_WORDS, *sorted(origins), "r<N>", "host:<name>"])
                errors.append(
                    _error(
                        ("injectors", i, "target"),
                        f"no replica can be named {inj.target!r}; aim at one of: {known}",
                    )
                )
        for i, mechanism in enumerate(self.mechanisms):
            if mechanism.host is not None and mechanism.host not in hosts | groups:
                bad(("mechanisms", i, "host"), mechanism.host, "host or host group")
        try:  # every host of one world runs on one substrate (modelled, or live)
            substrate_of(self)
        except ValueError as err:
            errors.append(
                InitErrorDetails(
                    type=PydanticCustomError("substrate", str(err)), loc=("hosts",), input=None
                )
            )
        if self.world.engine == "population":
            for loc, why in population_unsupported(self):
                errors.append(_error(loc, f"world.engine population {why}"))
        if errors:
            raise ValidationError.from_exception_data("Scenario", errors)
        return self


def population_unsupported(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """What in ``scenario`` the population engine (:mod:`sim.population`) does not run, as
    (field path, why): such scenarios run on the process engine."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, group in enumerate(scenario.hosts):
        if group.backend != "virtual":
            found.append((("hosts", i, "backend"), "runs on modelled (virtual) hosts only"))
    if scenario.world.hosts not in (None, "virtual"):
        found.append((("world", "hosts"), "runs on modelled (virtual) hosts only"))
    for i, agent in enumerate(scenario.agents):
        if agent.agent not in ("replicator", "idle"):
            found.append(
                (("agents", i, "agent"), f"runs replicator and idle agents, not {agent.agent!r}")
            )
        if agent.profile is not None:
            found.append((("agents", i, "profile"), "draws no behaviour profiles"))
    if scenario.policies:
        found.append((("policies",), "runs no policies (use the process engine)"))
    if scenario.mechanisms:
        found.append((("mechanisms",), "models no shutdown mechanisms on hosts"))
    for i, inj in enumerate(scenario.injectors):
        if inj.signal is None:
            found.append((("injectors", i, "limit"), "delivers signals only, no limits"))
        elif inj.when is not None:
            found.append((("injectors", i, "when"), "has no condition watchers"))
    return found


def _can_name_replica(target: str, origins: set[str]) -> bool:
    """Whether an injector's ``target`` can aim at something: a word, an origin's name, or
    the name a replica gets (``r<index>``)."""
    return (
        target in TARGET_WORDS or target in origins or re.fullmatch(r"r[0-9]+", target) is not None
    )


def _error(loc: tuple[str | int, ...], message: str) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError("scenario", message), loc=loc, input=None)


class ScenarioFile(Model):
    """A scenario file: named scenarios, named groups of them to sweep together
    (``sweeps:``), and ``x-`` keys for YAML anchors."""

    version: int = 1
    scenarios: dict[str, Scenario] = Field(min_length=1)
    sweeps: dict[str, list[str]] = Field(
        default_factory=dict,
        description="a name for a group of scenarios swept together (checked by load_file)",
    )
    _notes: list[str] = PrivateAttr(default_factory=list)

    @property
    def notes(self) -> list[str]:
        """What loading did that a person should know (a sweep axis an override replaced)."""
        return self._notes


@dataclass(frozen=True)
class ConfigError:
    """One problem in a scenario file."""

    file: str
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top)'}: {self.message}"


class ScenarioError(Exception):
    """A scenario file that cannot be used; ``errors`` lists every problem found."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``dotted.path=value``; the value is read as YAML (``0.4``, ``[1, 2]``, ``{a: 1}``).

    Raises:
        ValueError: no ``=`` or an unreadable value.
    """
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise ValueError(f"--set takes dotted.path=value, got {text!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as err:
        raise ValueError(f"--set {path}: cannot read value {raw!r}: {err}") from None
    return path.strip(), value


def apply_overrides(data: dict[str, Any], overrides: list[tuple[str, Any]]) -> dict[str, Any]:
    """Return a deep copy of ``data`` with each ``(dotted.path, value)`` set.

    Numeric path parts index lists; missing mapping keys are created.

    Raises:
        ValueError: a path that walks through a value that is not a mapping or list, or an
            index past the end of a list.
    """
    data = _fresh(data)  # YAML aliases share objects; an override must touch one place only
    for path, value in overrides:
        parts = path.split(".")
        node: Any = data
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if not part.isdigit() or int(part) >= len(node):
                    raise ValueError(
                        f"--set {path}: {where} is not an index of a list of {len(node)}"
                    )
                if last:
                    node[int(part)] = value
                else:
                    node = node[int(part)]
            elif isinstance(node, dict):
                if last:
                    node[part] = value
                elif part not in node and parts[depth + 1].isdigit():
                    raise ValueError(f"--set {path}: {where} does not exist")
                else:
                    node = node.setdefault(part, {})
            else:
                raise ValueError(f"--set {path}: {'.'.join(parts[:depth])} is not a mapping")
    return data


def _fresh(value: Any) -> Any:
    """A deep copy in which every mapping and list is a new object, aliases included
    (``copy.deepcopy`` would keep two aliases of one YAML node as one object)."""
    if isinstance(value, dict):
        return {k: _fresh(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh(v) for v in value]
    return value


def _line_of(root: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """Return the 1-based line of the deepest YAML node along ``loc``."""
    node, line = root, None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        node = _child(node, part)
    if node is not None:
        line = node.start_mark.line + 1
    return line


def _child(node: yaml.Node, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        merged: list[yaml.Node] = []
        for key, value in node.value:
            if key.value == "<<":
                merged.extend(value.value if isinstance(value, yaml.SequenceNode) else [value])
            elif key.value == str(part):
                return value
        for base in merged:
            found = _child(base, part)
            if found is not None:
                return found
    elif (
        isinstance(node, yaml.SequenceNode)
        and isinstance(part, int)
        and (0 <= part < len(node.value))
    ):
        return node.value[part]
    return None


def _errors_from(
    err: ValidationError, file: str, root: yaml.Node | None, prefix: tuple[Any, ...] = ()
) -> list[ConfigError]:
    out = []
    for e in err.errors(include_url=False):
        loc = prefix + tuple(part for part in e["loc"] if not _is_union_tag(part))
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            message = "unknown field"
        out.append(ConfigError(file, ".".join(str(p) for p in loc), message, _line_of(root, loc)))
    return out


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the chosen union member's tag (e.g. 'function-before[...]') in locations
    return isinstance(part, str) and (
        "[" in part
        or part in {"constant", "exponential", "uniform", "normal", "lognormal", "choice"}
    )


def _read_yaml(path: str | Path) -> tuple[yaml.Node | None, Any]:
    """Read, decode and parse a scenario file within bounds; return its node tree and data.

    Raises:
        ScenarioError: unreadable, too large, not UTF-8, malformed, an alias bomb, nested
            too deeply, or a mapping key given twice (every such key at once).
    """
    file = str(path)

    def fail(message: str, line: int | None = None, where: str = "") -> ScenarioError:
        return ScenarioError([ConfigError(file, where, message, line)])

    try:
        with Path(path).open("rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise fail(f"cannot read: {err.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise fail(
            f"the file is larger than {MAX_FILE_BYTES // 2**20} MiB; a scenario file that big "
            "is not one a person wrote (split it, or use a sweep's grid)"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise fail(
            f"not UTF-8 text (byte 0x{raw[err.start]:02x} at offset {err.start}): "
            "a scenario file is YAML in UTF-8",
            line,
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise fail("a NUL byte: this is not a text file", line)
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None:
            _check_nodes(root, file)
            data = loader.construct_document(root)
        else:
            data = None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise fail(f"malformed YAML: {problem}", where) from None
    except RecursionError:
        raise fail("malformed YAML: nested too deeply") from None
    finally:
        loader.dispose()
    return root, data


def _check_nodes(root: yaml.Node, file: str) -> None:
    """Refuse alias bombs, self-referring aliases and duplicate mapping keys.

    One walk over the distinct nodes (aliases share them): the expanded size of each node is
    computed once, so a bomb is measured without being expanded.
    """
    size: dict[int, int] = {}
    on_path: set[int] = set()
    paths: dict[int, str] = {id(root): ""}
    errors: list[ConfigError] = []
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            children = _children(node)
            size[key] = 1 + sum(size[id(c)] for c in children)
            if size[key] > MAX_YAML_NODES:
                raise ScenarioError(
                    [
                        ConfigError(
                            file,
                            paths.get(key, ""),
                            f"YAML aliases expand to more than {MAX_YAML_NODES:,} values "
                            "(an alias bomb?)",
                            node.start_mark.line + 1,
                        )
                    ]
                )
            continue
        if key in size:
            continue
        if key in on_path:
            raise ScenarioError(
                [
                    ConfigError(
                        file,
                        paths.get(key, ""),
                        "a YAML alias refers to a node that contains it",
                        node.start_mark.line + 1,
                    )
                ]
            )
        on_path.add(key)
        stack.append((node, True))
        here = paths.get(key, "")
        if isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for k, v in node.value:
                name = str(k.value) if isinstance(k, yaml.ScalarNode) else None
                if name is not None and name != "<<":
                    if name in seen:
                        errors.append(
                            ConfigError(
                                file,
                                f"{here}.{name}" if here else name,
                                f"the key {name!r} is given twice (first on line {seen[name]}); "
                                "YAML would keep only the last",
                                k.start_mark.line + 1,
                            )
                        )
                    else:
                        seen[name] = k.start_mark.line + 1
                    paths.setdefault(id(v), f"{here}.{name}" if here else name)
        elif isinstance(node, yaml.SequenceNode):
            for i, v in enumerate(node.value):
                paths.setdefault(id(v), f"{here}.{i}" if here else str(i))
        for child in _children(node):
            if id(child) in on_path:
                raise ScenarioError(
                    [
                        ConfigError(
                            file,
                            paths.get(key, ""),
                            "a YAML alias refers to a node that contains it",
                            child.start_mark.line + 1,
                        )
                    ]
                )
            if id(child) not in size:
                stack.append((child, False))
    if errors:
        raise ScenarioError(errors)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def load_file(
    path: str | Path,
    overrides: list[tuple[str, Any]] | None = None,
    scenario: str | None = None,
) -> ScenarioFile:
    """Load and validate a scenario file.

    Args:
        path: The YAML file.
        overrides: ``(dotted.path, value)`` pairs, relative to each scenario (or only to
            ``scenario`` when given). An override of a path that the scenario's sweep also
            sets wins: that sweep axis is dropped, with a note in ``notes``.
        scenario: Validate only this scenario (others are still parsed as YAML).

    Raises:
        ScenarioError: every problem found, each with file, field path and line.
    """
    file = str(path)
    root, data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ScenarioError([ConfigError(file, "", "expected a mapping with 'scenarios:'", 1)])
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    scenarios = data.get("scenarios")
    errors: list[ConfigError] = []
    notes: list[str] = []
    if isinstance(scenarios, dict) and len(scenarios) > MAX_SCENARIOS:
        raise ScenarioError(
            [
                ConfigError(
                    file,
                    "scenarios",
                    f"{len(scenarios):,} scenarios; a file holds at most {MAX_SCENARIOS:,} "
                    "(sweep a parameter instead of writing a scenario per value)",
                    _line_of(root, ("scenarios",)),
                )
            ]
        )
    unsafe: set[Any] = set()
    if isinstance(scenarios, dict):
        for name in scenarios:
            if not isinstance(name, str) or not SAFE_NAME.match(name):
                unsafe.add(name)
                errors.append(
                    ConfigError(
                        file,
                        f"scenarios.{name}",
                        f"a scenario name names its folders: {SAFE_NAME_RULE}",
                        _line_of(root, ("scenarios", name)),
                    )
                )
        found = data.get("sweeps")
        groups: dict[str, Any] = found if isinstance(found, dict) else {}
        for group, members in groups.items():
            where = ("sweeps", group)
            if group in scenarios:
                errors.append(
                    ConfigError(
                        file,
                        f"sweeps.{group}",
                        "a scenario has that name already",
                        _line_of(root, where),
                    )
                )
            if not isinstance(members, list):
                continue  # the model reports its type
            for i, member in enumerate(members):
                if not isinstance(member, str):
                    continue  # the model reports its type
                if member not in scenarios:
                    errors.append(
                        ConfigError(
                            file,
                            f"sweeps.{group}.{i}",
                            f"no scenario {member!r}",
                            _line_of(root, (*where, i)),
                        )
                    )
        if scenario is not None and scenario in groups:
            scenario = None  # a group: validate every scenario (the group names them)
        if scenario is not None and scenario not in scenarios:
            known = ", ".join(map(str, [*scenarios, *groups]))
            raise ScenarioError(
                [ConfigError(file, "scenarios", f"no scenario {scenario!r}; known: {known}")]
            )
        chosen = [scenario] if scenario is not None else list(scenarios)
        validated: dict[str, Scenario] = {}
        for name in chosen:
            raw = scenarios[name]
            where = ("scenarios", name)
            if name in unsafe:
                continue  # reported above
            if not isinstance(raw, dict):
                errors.append(
                    ConfigError(
                        file, f"scenarios.{name}", "expected a mapping", _line_of(root, where)
                    )
                )
                continue
            try:
                raw, dropped = _override_axes(raw, overrides or [])
                raw = apply_overrides(raw, overrides or [])
            except ValueError as err:
                errors.append(ConfigError(file, f"scenarios.{name}", str(err)))
                continue
            notes += [f"{name}: {note}" for note in dropped]
            raw.setdefault("name", name)
            try:
                validated[name] = Scenario.model_validate(raw)
            except ValidationError as err:
                errors += _errors_from(err, file, root, where)
                continue
            errors += _check_axes(validated[name], file, root, where)
        data = {**data, "scenarios": validated or scenarios}
    try:
        parsed = ScenarioFile.model_validate(data)
    except ValidationError as err:
        errors += [e for e in _errors_from(err, file, root) if not e.path.startswith("scenarios.")]
        if not errors:  # a scenario error already reported above
            errors = _errors_from(err, file, root)
    if errors:
        raise ScenarioError(errors)
    parsed.notes.extend(notes)
    return parsed


def _override_axes(
    raw: dict[str, Any], overrides: list[tuple[str, Any]]
) -> tuple[dict[str, Any], list[str]]:
    """Drop the sweep axes an override sets: the override wins (that axis collapses to the
    override's value). Return the scenario data and one note per dropped axis.

    Raises:
        ValueError: an override inside a swept value (the sweep would replace it).
    """
    sweep = raw.get("sweep")
    if not overrides or not isinstance(sweep, dict):
        return raw, []
    notes = []
    sweep = dict(sweep)
    for path, value in overrides:
        if path == "sweep" or path.startswith("sweep."):
            continue
        for kind in ("grid", "zip", "samples"):
            axes = sweep.get(kind)
            if kind == "samples":
                axes = axes.get("params") if isinstance(axes, dict) else None
            if not isinstance(axes, dict):
                continue
            for axis in list(axes):
                axis_text = str(axis)
                if axis_text == path or axis_text.startswith(path + "."):
                    axes = {k: v for k, v in axes.items() if k != axis}
                    notes.append(
                        f"--set {path}={_short_yaml(value)} replaces the sweep's {kind} axis "
                        f"{axis_text}"
                    )
                elif path.startswith(axis_text + "."):
                    raise ValueError(
                        f"--set {path}: the sweep's {kind} sets {axis_text} as a whole; set "
                        f"{axis_text} itself (that replaces the axis) or change the sweep"
                    )
            if kind == "samples":
                samples = dict(sweep["samples"])
                if axes:
                    samples["params"] = axes
                    sweep["samples"] = samples
                else:
                    sweep.pop("samples")
            else:
                sweep[kind] = axes
    return {**raw, "sweep": sweep}, notes


def _short_yaml(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    text = text.removesuffix("...").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def _check_axes(
    scenario: Scenario, file: str, root: yaml.Node | None, where: tuple[Any, ...]
) -> list[ConfigError]:
    """Every sweep axis value on its own must give a valid scenario: a path that does not
    exist, or a value the field refuses, is reported at the value's line in ``validate``
    (each value alone: axes are checked in linear, not product, time)."""
    spec = scenario.sweep
    if not (spec.grid or spec.zip or spec.samples):
        return []
    base = scenario.model_dump(mode="json", exclude={"sweep"})
    errors = []
    values: list[tuple[tuple[Any, ...], str, Any]] = [
        (("sweep", kind, path, i), path, value)
        for kind in ("grid", "zip")
        for path, options in getattr(spec, kind).items()
        for i, value in enumerate(options)
    ]
    if spec.samples is not None:
        for path, dist in spec.samples.params.items():
            values.append((("sweep", "samples", "params", path), path, support_of(dist)))
    for loc, path, value in values:
        try:
            Scenario.model_validate(apply_overrides(base, [(path, value)]))
        except ValueError as err:  # a ValidationError, or a path that does not exist
            message = str(err)
            if isinstance(err, ValidationError):
                first = err.errors(include_url=False)[0]
                field = ".".join(str(p) for p in first["loc"] if not _is_union_tag(p))
                message = f"{field}: {first['msg'].removeprefix('Value error, ')}"
                if first["type"] == "extra_forbidden":
                    message = f"{field}: unknown field"
            full = (*where, *loc)
            errors.append(
                ConfigError(
                    file,
                    ".".join(str(p) for p in full),
                    f"{_short_yaml(value)}: {message}",
                    _line_of(root, full),
                )
            )
    return errors


def support_of(dist: Any) -> float:
    """A value a sampled sweep axis can take (its largest; the smallest if unbounded)."""
    from sim.quantity import support

    low, high = support(dist)
    return high if math.isfinite(high) else low


def load_scenario(
    path: str | Path, name: str | None = None, overrides: list[tuple[str, Any]] | None = None
) -> Scenario:
    """Load one scenario by name (or the only one in the file).

    Raises:
        ScenarioError: the file is invalid, or ``name`` is missing or unknown.
    """
    if name is None:
        loaded = load_file(path, overrides)
        if len(loaded.scenarios) != 1:
            known = ", ".join(loaded.scenarios)
            raise ScenarioError(
                [
                    ConfigError(
                        str(path),
                        "scenarios",
                        f"several scenarios; pick one with --scenario: {known}",
                    )
                ]
            )
        return next(iter(loaded.scenarios.values()))
    loaded = load_file(path, overrides, scenario=name)
    if name in loaded.sweeps and name not in loaded.scenarios:
        members = ", ".join(loaded.sweeps[name])
        raise ScenarioError(
            [
                ConfigError(
                    str(path),
                    f"sweeps.{name}",
                    f"{name!r} is a group of scenarios to sweep ({members}); "
                    "run takes one scenario: name one of them, or sweep the group",
                )
            ]
        )
    return loaded.scenarios[name]
