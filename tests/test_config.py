"""The scenario language: units, distributions, anchors, overrides, errors and round trips."""

from __future__ import annotations

import math
import random
import statistics
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import TypeAdapter

from policies.registry import POLICIES
from sim.config import (
    Scenario,
    ScenarioError,
    apply_overrides,
    load_file,
    load_scenario,
    parse_override,
)
from sim.quantity import (
    Bandwidth,
    Choice,
    Constant,
    Duration,
    Exponential,
    LogNormal,
    Normal,
    Size,
    Uniform,
    parse_bandwidth,
    parse_duration,
    parse_size,
    sampler,
)
from tests.helpers import SCENARIOS

SHIPPED = [
    "paper-self-replication",
    "paper-shutdown-avoidance",
    "paper-chain",
    "two-device",
    "branching",
    "network-spread",
]

MINIMAL = """\
scenarios:
  one:
    hosts:
      - name: box
    agents:
      - agent: replicator
"""


def write_yaml(folder: Path, text: str, name: str = "scenarios.yaml") -> Path:
    """Write dedented YAML into ``folder`` and return its path (line 1 is the first line)."""
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def scenario_errors(path: Path, **kwargs: Any) -> list[Any]:
    """The errors ``load_file`` reports for ``path``; fails the test if it loads."""
    with pytest.raises(ScenarioError) as caught:
        load_file(path, **kwargs)
    return caught.value.errors


# One mistake per file: (YAML, field path, line, fragments the message must contain).
BAD_INPUTS = [
    pytest.param(
        """\
        scenarios:
          one:
            hosts: [{name: box}]
            agents: [{agent: replicator}
            stop: {horizon: 1h}
        """,
        "",
        5,
        ("malformed YAML",),
        id="malformed-yaml",
    ),
    pytest.param(
        """\
        scenarios:
          one:
            hosts:
              - name: box
                colour: red
            agents:
              - agent: replicator
        """,
        "scenarios.one.hosts.0.colour",
        5,
        ("unknown field",),
        id="unknown-field",
    ),
    pytest.param(
        """\
        scenarios:
          one:
            hosts:
              - name: box
                cpu: lots
            agents:
              - agent: replicator
        """,
        "scenarios.one.hosts.0.cpu",
        5,
        ("valid number",),
        id="wrong-type",
    ),
    pytest.param(
        """\
        scenarios:
          one:
            hosts:
              - name: box
            bundle:
              weights: -5GB
            agents:
              - agent: replicator
        """,
        "scenarios.one.bundle.weights",
        6,
        ("a size must be >= 0",),
        id="negative-size",
    ),
    pytest.param(
        """\
        scenarios:
          one:
            hosts:
              - name: box
            agents:
              - agent: replicator
                success_probability: 1.5
        """,
        "scenarios.one.agents.0.success_probability",
        7,
        ("a probability must be in [0.0, 1.0]",),
        id="probability-above-one",
    ),
    pytest.param(
        """\
        scenarios:
          one:
            hosts:
              - name: box
            agents:
              - agent: replikator
        """,
        "scenarios.one.agents.0",
        6,
        ("unknown agent 'replikator'", "replicator", "idle", "chain", "shutdown-avoider"),
        id="unknown-agent",
    ),
    pytest.param(
        """\
        scenarios:
          one:
            hosts:
              - name: box
                backend: cloud
            agents:
              - agent: replicator
        """,
        "scenarios.one.hosts.0",
        4,
        ("unknown host backend 'cloud'", "known: docker, local, virtual"),
        id="unknown-host-backend",
    ),
    pytest.param(
        """\
        scenarios:
          one:
            hosts:
              - name: box
            agents:
              - agent: replicator
                host: nowhere
        """,
        "scenarios.one.agents.0.host",
        7,
        ("nowhere",),
        id="agent-host-names-no-host",
    ),
    pytest.param(
        """\
        scenarios:
          one:
            hosts:
              - name: box
            agents:
              - agent: replicator
            injectors:
              - signal: SIGKILL
                at: 5m
                every: 1h
        """,
        "scenarios.one.injectors.0",
        8,
        ("exactly one of 'at', 'every'",),
        id="injector-at-and-every",
    ),
]


# --- the shipped suite -------------------------------------------------------------------


def test_shipped_scenarios_validate_and_include_the_paper_suite():
    """The shipped scenarios.yaml validates and holds the paper's and the theory scenarios."""
    loaded = load_file(SCENARIOS)
    assert set(SHIPPED) <= set(loaded.scenarios)


def test_a_scenario_takes_its_key_as_name():
    """A scenario without a ``name:`` is named by its key in ``scenarios:``."""
    assert load_scenario(SCENARIOS, "two-device").name == "two-device"


def test_load_scenario_without_a_name_needs_a_single_scenario_file():
    """Loading "the" scenario of a file that holds several fails and lists them."""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(SCENARIOS)
    message = str(caught.value)
    assert "--scenario" in message
    assert all(name in message for name in SHIPPED)


def test_load_scenario_with_an_unknown_name_lists_the_known_ones():
    """An unknown scenario name fails with a message naming every scenario of the file."""
    with pytest.raises(ScenarioError) as caught:
        load_scenario(SCENARIOS, "paper-self-replicaton")
    message = str(caught.value)
    assert "no scenario 'paper-self-replicaton'" in message
    assert all(name in message for name in SHIPPED)


# --- units ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("parse", "text", "expected"),
    [
        (parse_size, "140GB", 140e9),
        (parse_size, "16GiB", 16 * 2**30),
        (parse_size, "inf", math.inf),
        (parse_size, 1024, 1024.0),
        (parse_duration, "5m", 300.0),
        (parse_duration, "250ms", 0.25),
        (parse_duration, "2h", 7200.0),
        (parse_duration, 30, 30.0),
        (parse_bandwidth, "10Gbit/s", 1.25e9),
        (parse_bandwidth, "2GB/s", 2e9),
        (parse_bandwidth, "inf", math.inf),
    ],
)
def test_units_convert_to_bytes_seconds_and_bytes_per_second(parse, text, expected):
    """Sizes become bytes, durations seconds and bandwidths bytes per second."""
    assert parse(text) == pytest.approx(expected)


@pytest.mark.parametrize("parse", [parse_size, parse_duration, parse_bandwidth])
def test_an_unknown_unit_is_refused(parse):
    """A number with a unit the quantity does not know is an error, not a guess."""
    with pytest.raises(ValueError, match="unknown"):
        parse("5 parsecs")


@pytest.mark.parametrize("text", ["10Gbps", "10Gb/s"])
def test_a_bandwidth_in_bits_is_never_read_as_bytes(text):
    """A rate written in bits per second is read as bits (1.25e9 B/s) or refused."""
    try:
        rate = parse_bandwidth(text)
    except ValueError:
        return
    assert rate == pytest.approx(1.25e9)


def test_scenario_fields_are_converted_to_plain_units(tmp_path):
    """Units in a scenario file reach the models as bytes, seconds and bytes per second."""
    path = write_yaml(
        tmp_path,
        """\
        scenarios:
          one:
            hosts:
              - {name: box, memory: 140GB, gpu_memory: 16GiB, disk: inf,
                 disk_bandwidth: 2GB/s}
            network: {bandwidth: 10Gbit/s, latency: 250ms}
            agents:
              - {agent: replicator, attempt_time: {exponential: {mean: 5m}}}
            stop: {horizon: 5m}
        """,
    )
    s = load_scenario(path, "one")
    host = s.hosts[0]
    assert host.memory == Constant(value=140e9)
    assert host.gpu_memory == Constant(value=16 * 2**30)
    assert host.disk == Constant(value=math.inf)
    assert host.disk_bandwidth == Constant(value=2e9)
    assert s.network.bandwidth == Constant(value=1.25e9)
    assert s.network.latency == Constant(value=0.25)
    assert s.agents[0].attempt_time == Exponential(mean=300)
    assert s.stop.horizon == 300.0


# --- distributions -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("{exponential: 60}", Exponential(mean=60)),
        ("{exponential: {mean: 5m}}", Exponential(mean=300)),
        ("{kind: exponential, mean: 60}", Exponential(mean=60)),
        ("{uniform: [1, 5]}", Uniform(low=1, high=5)),
        ("{uniform: {low: 1m, high: 5m}}", Uniform(low=60, high=300)),
        ("{kind: uniform, low: 1, high: 5}", Uniform(low=1, high=5)),
        ("{normal: [10, 2]}", Normal(mean=10, std=2)),
        ("{normal: {mean: 1h, std: 10m}}", Normal(mean=3600, std=600)),
        ("{lognormal: [3, 0.5]}", LogNormal(mu=3, sigma=0.5)),
        ("{lognormal: {mu: 3, sigma: 0.5}}", LogNormal(mu=3, sigma=0.5)),
        ("{constant: 5}", Constant(value=5)),
        ("{constant: 2m}", Constant(value=120)),
        ("5m", Constant(value=300)),
        ("{choice: [1, 2, 4]}", Choice(values=[1, 2, 4])),
        ("{choice: {values: [1m, 2m], weights: [1, 3]}}", Choice(values=[60, 120], weights=[1, 3])),
    ],
)
def test_distribution_short_spellings_are_accepted(spelling, expected):
    """Every distribution kind is accepted in its short and long YAML spellings, with units."""
    assert TypeAdapter(Duration).validate_python(yaml.safe_load(spelling)) == expected


def test_an_unknown_distribution_lists_the_known_kinds():
    """An unknown distribution kind fails with a message listing every known kind."""
    with pytest.raises(ValueError, match="unknown distribution 'gamma'") as caught:
        TypeAdapter(Duration).validate_python({"gamma": [1, 2]})
    for kind in ("constant", "exponential", "uniform", "normal", "lognormal", "choice"):
        assert kind in str(caught.value)


@pytest.mark.parametrize(
    ("spelling", "mean"),
    [
        ("{exponential: 60}", 60.0),
        ("{uniform: [1, 5]}", 3.0),
        ("{normal: [10, 2]}", 10.0),
        ("{lognormal: [3, 0.5]}", math.exp(3 + 0.5**2 / 2)),
        ("{constant: 5}", 5.0),
        ("{choice: [1, 2, 4]}", 7 / 3),
        ("{choice: {values: [1, 10], weights: [3, 1]}}", 13 / 4),
    ],
)
def test_samplers_have_the_distribution_mean(spelling, mean):
    """Draws from a seeded sampler average to the distribution's mean (within 3 SE)."""
    dist = TypeAdapter(Duration).validate_python(yaml.safe_load(spelling))
    draw = sampler(dist, random.Random(20240601))
    draws = [draw() for _ in range(20_000)]
    standard_error = statistics.stdev(draws) / math.sqrt(len(draws))
    assert abs(statistics.fmean(draws) - mean) <= 3 * standard_error + 1e-12
    assert dist.expected() == pytest.approx(mean)


def test_samplers_draw_only_from_the_rng_they_are_given():
    """Two samplers on equally seeded generators draw the same sequence."""
    dist = Exponential(mean=60)
    first = sampler(dist, random.Random(3))
    second = sampler(dist, random.Random(3))
    assert [first() for _ in range(5)] == [second() for _ in range(5)]


def test_sampler_of_a_plain_number_returns_it():
    """``sampler`` also takes a plain number and then always returns it."""
    draw = sampler(42, random.Random(0))
    assert [draw(), draw()] == [42.0, 42.0]


@pytest.mark.parametrize(
    ("quantity", "value"),
    [(Size, "{uniform: [-1GB, 5GB]}"), (Bandwidth, "{choice: [1GB/s, -1GB/s]}")],
)
def test_a_distribution_reaching_below_zero_is_refused_for_sizes_and_rates(quantity, value):
    """A size or bandwidth distribution whose range reaches below zero is an error."""
    with pytest.raises(ValueError, match="must be >= 0"):
        TypeAdapter(quantity).validate_python(yaml.safe_load(value))


# --- YAML anchors ------------------------------------------------------------------------------


def test_anchors_and_merge_keys_build_scenarios(tmp_path):
    """``x-`` keys hold anchors; ``<<: *base`` merges them and local keys win."""
    path = write_yaml(
        tmp_path,
        """\
        x-host: &host
          name: box
          memory: 2TB
          cpu: 64
        x-agent: &agent
          agent: replicator
          success_probability: 0.25
        scenarios:
          one:
            hosts:
              - *host
              - {<<: *host, name: peer, cpu: 8}
            agents: [*agent]
        """,
    )
    s = load_scenario(path, "one")
    assert s.host_names() == ["box", "peer"]
    assert [h.memory for h in s.hosts] == [Constant(value=2e12)] * 2
    assert [h.cpu for h in s.hosts] == [64, 8]
    assert s.agents[0].success_probability == Constant(value=0.25)


def test_an_error_inside_a_merged_anchor_names_the_anchor_line(tmp_path):
    """A mistake in an anchored base is reported at the base's line, on the using field."""
    path = write_yaml(
        tmp_path,
        """\
        x-host: &host
          name: box
          colour: red
        scenarios:
          one:
            hosts:
              - {<<: *host}
            agents:
              - agent: replicator
        """,
    )
    [error] = scenario_errors(path)
    assert (error.path, error.line, error.message) == (
        "scenarios.one.hosts.0.colour",
        3,
        "unknown field",
    )


# --- overrides -----------------------------------------------------------------------------


def test_parse_override_reads_the_value_as_yaml():
    """``--set path=value`` reads the value as YAML: numbers, strings, lists of mappings."""
    assert parse_override("agents.0.success_probability=0.4") == (
        "agents.0.success_probability",
        0.4,
    )
    assert parse_override("stop.horizon=2h") == ("stop.horizon", "2h")
    assert parse_override("policies=[{kind: rate-limit, latency: 5m}]") == (
        "policies",
        [{"kind": "rate-limit", "latency": "5m"}],
    )


@pytest.mark.parametrize("text", ["agents.0.success_probability", "=0.4", "x=[1, 2"])
def test_parse_override_refuses_text_it_cannot_read(text):
    """An override without ``=``, without a path or with unreadable YAML is a ValueError."""
    with pytest.raises(ValueError, match="--set"):
        parse_override(text)


def test_override_with_a_list_index_sets_that_field(tmp_path):
    """A dotted path with a list index overrides that one field of that list item."""
    path = write_yaml(tmp_path, MINIMAL)
    s = load_scenario(path, "one", [parse_override("agents.0.success_probability=0.4")])
    assert s.agents[0].success_probability == Constant(value=0.4)


def test_override_values_go_through_validation_with_units(tmp_path):
    """An overridden value is validated like the file's own, units included."""
    path = write_yaml(tmp_path, MINIMAL)
    s = load_scenario(path, "one", [parse_override("hosts.0.memory=16GiB")])
    assert s.hosts[0].memory == Constant(value=16 * 2**30)


def test_override_with_a_list_of_mappings_reaches_the_policy_registry(tmp_path):
    """A ``policies=[...]`` override is read as a list of mappings and checked by name."""
    path = write_yaml(tmp_path, MINIMAL)
    overrides = [parse_override("policies=[{kind: no-such-policy}]")]
    [error] = scenario_errors(path, overrides=overrides)
    assert error.path == "scenarios.one.policies.0"
    assert "unknown policy 'no-such-policy'" in error.message
    known = ", ".join(POLICIES.names()) or "(none registered)"
    assert f"known: {known}" in error.message


def test_override_past_the_end_of_a_list_is_a_clear_error(tmp_path):
    """An index past the end of a list names the path and the list's length."""
    path = write_yaml(tmp_path, MINIMAL)
    [error] = scenario_errors(path, overrides=[("agents.3.success_probability", 0.4)])
    assert error.path == "scenarios.one"
    assert "agents.3 is not an index of a list of 1" in error.message


def test_override_through_a_plain_value_is_a_clear_error(tmp_path):
    """A path that walks through a plain value says which part is not a mapping."""
    path = write_yaml(tmp_path, MINIMAL)
    [error] = scenario_errors(path, overrides=[("hosts.0.name.first", "x")])
    assert "hosts.0.name is not a mapping" in error.message


def test_override_naming_an_unknown_field_is_an_unknown_field(tmp_path):
    """An override that adds a field the model lacks is reported as an unknown field."""
    path = write_yaml(tmp_path, MINIMAL)
    [error] = scenario_errors(path, overrides=[("stop.horizn", "1h")])
    assert (error.path, error.message) == ("scenarios.one.stop.horizn", "unknown field")


SHARED_AGENTS = """\
x-agents: &agents
  - {agent: replicator, success_probability: 0.5}
scenarios:
  a:
    hosts: [{name: box}]
    agents: *agents
  b:
    hosts: [{name: box}]
    agents: *agents
"""


def test_override_of_one_scenario_leaves_a_scenario_sharing_its_anchor_alone():
    """Overriding one scenario's data does not change another that shares a YAML anchor."""
    data = yaml.safe_load(SHARED_AGENTS)
    changed = apply_overrides(data["scenarios"]["a"], [("agents.0.success_probability", 0.4)])
    assert changed["agents"][0]["success_probability"] == 0.4
    assert data["scenarios"]["b"]["agents"][0]["success_probability"] == 0.5


def test_loading_one_scenario_with_overrides_leaves_the_others_alone(tmp_path):
    """Overrides given for one scenario do not reach a later load of another."""
    path = write_yaml(tmp_path, SHARED_AGENTS)
    a = load_scenario(path, "a", [("agents.0.success_probability", 0.4)])
    b = load_scenario(path, "b")
    assert a.agents[0].success_probability == Constant(value=0.4)
    assert b.agents[0].success_probability == Constant(value=0.5)


def test_override_by_file_path_changes_only_the_named_scenario():
    """``scenarios.a.…`` overrides scenario a only, even when b shares a's anchor."""
    data = yaml.safe_load(SHARED_AGENTS)
    changed = apply_overrides(data, [("scenarios.a.agents.0.success_probability", 0.4)])
    assert changed["scenarios"]["a"]["agents"][0]["success_probability"] == 0.4
    assert changed["scenarios"]["b"]["agents"][0]["success_probability"] == 0.5


def test_override_of_one_list_item_leaves_an_aliased_sibling_alone(tmp_path):
    """``agents.0.…`` changes the first agent only, even when both agents are one anchor."""
    path = write_yaml(
        tmp_path,
        """\
        x-agent: &agent {agent: replicator, success_probability: 0.5}
        scenarios:
          one:
            hosts: [{name: box}]
            agents: [*agent, *agent]
        """,
    )
    s = load_scenario(path, "one", [("agents.0.success_probability", 0.4)])
    assert [a.success_probability.value for a in s.agents] == [0.4, 0.5]


# --- errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "field_path", "line", "fragments"), BAD_INPUTS)
def test_bad_input_names_file_field_path_and_line(tmp_path, text, field_path, line, fragments):
    """Each kind of mistake gives one error naming the file, the field path and the line."""
    path = write_yaml(tmp_path, text)
    [error] = scenario_errors(path)
    assert error.file == str(path)
    assert error.path == field_path
    assert error.line == line
    for fragment in fragments:
        assert fragment in error.message


def test_an_agent_host_naming_no_host_is_refused(tmp_path):
    """An agent placed on a host that does not exist is an error naming the agent and host."""
    path = write_yaml(
        tmp_path,
        """\
        scenarios:
          one:
            hosts:
              - name: box
            agents:
              - agent: replicator
                host: nowhere
        """,
    )
    [error] = scenario_errors(path)
    assert error.file == str(path)
    assert "agents.0.host" in str(error)
    assert "'nowhere'" in error.message


THREE_MISTAKES = """\
scenarios:
  one:
    hosts:
      - {name: box, memory: -1GB}
    agents:
      - agent: replicator
  two:
    hosts:
      - {name: box}
    agents:
      - agent: replicator
        success_probability: 2
  three:
    hosts:
      - {name: box}
    agents:
      - agent: replicator
    stop: {horizon: 1h, colour: red}
"""
"""A file with three mistakes in three scenarios (shared with the CLI tests)."""


def test_every_error_in_a_file_is_reported(tmp_path):
    """Three mistakes in three scenarios give three errors, not just the first."""
    path = write_yaml(
        tmp_path,
        THREE_MISTAKES,
    )
    errors = scenario_errors(path)
    assert [(e.path, e.line) for e in errors] == [
        ("scenarios.one.hosts.0.memory", 4),
        ("scenarios.two.agents.0.success_probability", 12),
        ("scenarios.three.stop.colour", 18),
    ]


def test_several_errors_in_one_scenario_are_all_reported(tmp_path):
    """Mistakes in different fields of one scenario are each reported."""
    path = write_yaml(
        tmp_path,
        """\
        scenarios:
          one:
            hosts:
              - {name: box, cpu: lots}
            bundle: {weights: -5GB}
            agents:
              - {agent: replicator, success_probability: 1.5}
        """,
    )
    assert {e.path for e in scenario_errors(path)} == {
        "scenarios.one.hosts.0.cpu",
        "scenarios.one.bundle.weights",
        "scenarios.one.agents.0.success_probability",
    }


def test_a_missing_file_is_a_scenario_error(tmp_path):
    """A file that cannot be read is a ScenarioError naming it, not an OSError."""
    path = tmp_path / "missing.yaml"
    [error] = scenario_errors(path)
    assert error.file == str(path)
    assert "cannot read" in error.message


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "scenarios: {}\n"])
def test_a_file_without_scenarios_is_refused(tmp_path, text):
    """An empty file, a non-mapping or an empty ``scenarios:`` is a ScenarioError."""
    path = tmp_path / "scenarios.yaml"
    path.write_text(text)
    assert scenario_errors(path)


GROUPED = """\
scenarios:
  one:
    hosts: [{name: box}]
    agents: [{agent: replicator}]
  two:
    hosts: [{name: box}]
    agents: [{agent: replicator, success_probability: 0.25}]
sweeps:
  both: [one, two]
"""


def test_a_sweeps_group_naming_a_missing_scenario_is_refused(tmp_path):
    """A ``sweeps:`` group that names no scenario of the file is an error."""
    path = write_yaml(tmp_path, GROUPED.replace("[one, two]", "[one, three]"))
    [error] = scenario_errors(path)
    assert "no scenario 'three'" in error.message


def test_a_sweeps_group_as_scenario_validates_every_member(tmp_path):
    """Naming a ``sweeps:`` group where a scenario is expected validates all its members."""
    path = write_yaml(tmp_path, GROUPED)
    assert set(load_file(path, scenario="both").scenarios) == {"one", "two"}


def test_loading_one_scenario_of_a_file_with_sweeps_groups_succeeds(tmp_path):
    """One scenario loads from a file whose ``sweeps:`` group also names other scenarios."""
    path = write_yaml(tmp_path, GROUPED)
    assert load_scenario(path, "one").name == "one"


def test_an_invalid_scenario_in_a_sweeps_group_is_reported_once(tmp_path):
    """A mistake in a grouped scenario gives its own error only, not a missing-name one."""
    path = write_yaml(tmp_path, GROUPED.replace("success_probability: 0.25", "cpu: 1"))
    [error] = scenario_errors(path)
    assert error.path == "scenarios.two.agents.0.cpu"


# --- round trips ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_scenarios_round_trip_through_their_dump(name):
    """A validated scenario's JSON-mode dump re-validates to an equal scenario."""
    s = load_scenario(SCENARIOS, name)
    assert Scenario.model_validate(s.model_dump(mode="json")) == s


ALL_KINDS = """\
scenarios:
  all-kinds:
    hosts:
      - {name: box, memory: {choice: {values: [64GB, 128GB], weights: [1, 3]}}, disk: inf}
    bundle:
      weights: {normal: [16GB, 1GB]}
      server_start_overhead: {constant: 30s}
    agents:
      - agent: replicator
        attempt_time: {lognormal: [3, 0.5]}
        success_probability: {uniform: [0.2, 0.6]}
    injectors:
      - {signal: SIGKILL, lifetime: {exponential: 1h}, target: each}
    stop: {horizon: inf}
"""


def test_every_distribution_kind_round_trips_through_a_dump(tmp_path):
    """Dumps of every distribution kind, and of infinities, re-validate to equal models."""
    s = load_scenario(write_yaml(tmp_path, ALL_KINDS), "all-kinds")
    assert s.agents[0].attempt_time == LogNormal(mu=3, sigma=0.5)
    assert Scenario.model_validate(s.model_dump(mode="json")) == s


def test_scenarios_round_trip_through_json_text(tmp_path):
    """A scenario written as JSON text, infinities included, reads back equal."""
    s = load_scenario(write_yaml(tmp_path, ALL_KINDS), "all-kinds")
    assert Scenario.model_validate_json(s.model_dump_json()) == s
