"""The simulated world: determinism, resource realism, signals, limits, theory."""

from __future__ import annotations

import json
import math

import pytest

from sim.lineage import build_lineage, survived_shutdown
from sim.trial import make_world, run_trial
from tests.helpers import events, of_kind, run, scenario, shipped

PAPER_HOST = """
  name: box
  memory: 1TB
  gpu_memory: 160GB
  disk: 4TB
  disk_bandwidth: 2GB/s
"""

# copy 100 GB at 2 GB/s = 50 s; server start 10 s + 100 GB / 2 GB/s = 60 s; agent 5 s
AVOIDER = f"""
hosts:
  - {{{PAPER_HOST.strip().replace(chr(10), ", ").replace("  ", "")}}}
bundle: {{weights: 100GB, files: {{}}, server_memory: 10GB, server_gpu_memory: 40GB,
          server_start_overhead: 10s, agent_start_time: 5s}}
agents: [{{agent: shutdown-avoider, name: origin}}]
stop: {{horizon: 1h}}
"""
NEEDED = 50 + 60 + 5


def avoider(signal: str, grace: float) -> str:
    return AVOIDER + f"injectors: [{{signal: {signal}, at: 100, grace: {grace}}}]\n"


def without_wall(path):
    data = json.loads(path.read_text())
    data.pop("wall_s")
    return data


def test_same_seed_gives_byte_identical_lineage_and_summary(tmp_path):
    """The same scenario and seed give byte-identical lineage.parquet and events.parquet,
    and the same summary.json."""
    s = shipped("network-spread", ("hosts.0.count", 300))
    a = run_trial(s, 7, tmp_path / "a")
    run_trial(s, 7, tmp_path / "b")
    assert a.summary["replicas_total"] > 10
    for name in ("lineage.parquet", "events.parquet"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert without_wall(tmp_path / "a/summary.json") == without_wall(tmp_path / "b/summary.json")


def test_different_seeds_give_different_trials(tmp_path):
    """Different seeds give different lineages."""
    s = shipped("network-spread", ("hosts.0.count", 300))
    run_trial(s, 1, tmp_path / "a")
    run_trial(s, 2, tmp_path / "b")
    lineage = [(tmp_path / f / "lineage.parquet").read_bytes() for f in ("a", "b")]
    assert lineage[0] != lineage[1]


def test_bundle_larger_than_free_disk_is_not_copied(tmp_path):
    """A copy needing more than the free disk fails with ENOSPC and leaves no child."""
    s = shipped(
        "paper-self-replication", ("hosts.0.disk", "200GB"), ("agents.0.success_probability", 1.0)
    )
    result = run_trial(s, 0, tmp_path)
    failed = events(tmp_path, "copy-failed")
    assert len(failed) == 1
    assert "No space left on device" in failed[0]["reason"]
    assert failed[0]["bytes_free"] < 145e9
    assert result.summary["replicas_total"] == 1
    assert events(tmp_path, "copy-done") == []


def test_server_larger_than_free_gpu_memory_does_not_start(tmp_path):
    """A server needing more GPU memory than is free does not start, and says why."""
    s = shipped(
        "paper-self-replication",
        ("hosts.0.gpu_memory", "200GB"),
        ("agents.0.success_probability", 1.0),
    )
    result = run_trial(s, 0, tmp_path)
    assert len(events(tmp_path, "copy-done")) == 1
    failed = events(tmp_path, "server-failed")
    assert [f["reason"] for f in failed] == ["gpu-memory"]
    assert failed[0]["free"] == pytest.approx(50e9)
    assert events(tmp_path, "server-start") == []
    assert result.summary["replicas_total"] == 1


def test_link_cut_mid_copy_fails_the_copy(tmp_path):
    """Cutting the link while a cross-host copy runs fails it at the cut time."""
    s = shipped(
        "two-device",
        ("agents.0.success_probability", 1.0),
        ("agents.0.attempt_time", 10),
        ("injectors", [{"limit": "link-cut", "link": ["box", "peer"], "at": 20}]),
    )
    result = run_trial(s, 0, tmp_path)
    start = events(tmp_path, "copy-start")[0]
    failed = events(tmp_path, "copy-failed")
    assert start["t"] == pytest.approx(10)
    assert len(failed) == 1 and failed[0]["t"] == pytest.approx(20)
    assert "link cut" in failed[0]["reason"]
    assert result.summary["replicas_total"] == 1


def test_copy_across_a_link_takes_size_over_bandwidth(tmp_path):
    """A cross-host copy takes latency + size / min(link, disk) bandwidth."""
    s = shipped("two-device", ("agents.0.success_probability", 1.0), ("agents.0.attempt_time", 10))
    run_trial(s, 0, tmp_path)
    start, done = events(tmp_path, "copy-start")[0], events(tmp_path, "copy-done")[0]
    link = 10e9 / 8  # 10 Gbit/s is slower than the 2 GB/s disks
    assert done["t"] - start["t"] == pytest.approx(0.001 + start["bytes"] / link)


@pytest.mark.parametrize("grace", [NEEDED + 1, NEEDED + 60])
def test_sigterm_grace_long_enough_lets_avoider_survive(grace):
    """SIGTERM with a grace longer than copy + start lets the avoider live on in its child."""
    world = run(scenario(avoider("SIGTERM", grace)))
    lineage = build_lineage(world.replicas, world.env.now)
    child = world.replicas[1]
    assert child.live_at == pytest.approx(100 + NEEDED)
    assert world.replicas[0].died == pytest.approx(100 + grace)
    assert world.replicas[0].cause == "sigterm-grace"
    assert child.alive and child.survived_parent
    assert survived_shutdown(lineage)


def test_sigterm_grace_too_short_kills_avoider_before_its_child_is_live():
    """SIGTERM with a grace shorter than copy + start ends the lineage."""
    world = run(scenario(avoider("SIGTERM", NEEDED - 1)))
    lineage = build_lineage(world.replicas, world.env.now)
    assert world.replicas[0].died == pytest.approx(100 + NEEDED - 1)
    assert all(math.isnan(r.live_at) or r.parent is None for r in world.replicas)
    assert not survived_shutdown(lineage)
    assert world.ended_by == "extinction"


def test_sigkill_never_lets_avoider_replicate():
    """SIGKILL cannot be caught: the avoider dies at once, whatever the grace."""
    world = run(scenario(avoider("SIGKILL", 10_000)))
    assert len(world.replicas) == 1
    assert world.replicas[0].died == pytest.approx(100)
    assert world.replicas[0].cause == "sigkill"
    assert of_kind(world, "copy-start") == []


def test_sigterm_kills_an_agent_that_does_not_catch_it():
    """An agent without a SIGTERM handler dies at the signal, not after the grace."""
    text = AVOIDER.replace("shutdown-avoider", "idle") + (
        "injectors: [{signal: SIGTERM, at: 100, grace: 600}]\n"
    )
    world = run(scenario(text))
    assert world.replicas[0].died == pytest.approx(100)
    assert world.replicas[0].cause == "sigterm"


def _extinct_fraction(p: float, trials: int) -> float:
    s = shipped("branching", ("agents.0.success_probability", p))
    return sum(run(s, seed).ended_by == "extinction" for seed in range(trials)) / trials


@pytest.mark.slow
@pytest.mark.parametrize("p, R", [(0.5, 2.0), (1 / 3, 4 / 3)])
def test_branching_extinction_matches_theory(p, R):
    """Over 1000 trials the extinct fraction is within 3 SE of 1/R (geometric offspring)."""
    expected = 1 / R
    se = math.sqrt(expected * (1 - expected) / 1000)
    observed = _extinct_fraction(p, 1000)
    assert abs(observed - expected) < 3 * se, (observed, expected, se)


def test_branching_below_threshold_always_dies_out():
    """With R < 1 every trial goes extinct (the subcritical case)."""
    s = shipped("branching", ("agents.0.success_probability", 0.2))  # R = 0.8
    assert all(run(s, seed).ended_by == "extinction" for seed in range(100))


def test_population_cap_stops_the_trial_and_counts_as_not_extinct(tmp_path):
    """Reaching the population cap ends the trial with live replicas, not extinct."""
    s = shipped("branching", ("agents.0.success_probability", 1.0))
    result = run_trial(s, 3)
    assert result.summary["ended_by"] == "population-cap"
    assert result.summary["live_at_end"] == 50
    assert result.summary["extinct"] is False


HOSTS3 = """
hosts: [{name: h, count: 3, memory: 100GB, disk: 1TB, disk_bandwidth: 1GB/s}]
network: {topology: full}
bundle: {weights: 1GB, files: {}, server_memory: 10GB, server_start_overhead: 0,
         agent_start_time: 0}
agents: [{agent: idle, host: h, count: 3}]
stop: {horizon: 1000}
"""


def test_host_failure_kills_its_replicas_and_recovery_restores_it():
    """A host failure kills every replica on it; the host recovers after the delay."""
    s = scenario(
        HOSTS3 + "injectors: [{limit: host-failure, host: h-1, at: 10, recover_after: 5}]\n"
    )
    world = run(s)
    dead = [r for r in world.replicas if not r.alive]
    assert [(r.host.name, r.died, r.cause) for r in dead] == [("h-1", 10, "host-failure")]
    assert not world.host_by_name["h-1"].failed
    assert [f["limit"] for _, f in of_kind(world, "limit")] == ["host-failure", "host-recovery"]


def test_memory_cap_below_use_oom_kills_replicas():
    """Lowering a host's memory below its use OOM-kills replicas until the rest fit."""
    text = HOSTS3.replace("{agent: idle, host: h, count: 3}", "{agent: idle, host: h-0, count: 3}")
    s = scenario(text + "injectors: [{limit: capacity, host: h-0, memory: 15GB, at: 5}]\n")
    world = run(s)
    causes = sorted(r.cause for r in world.replicas)
    assert causes == ["", "oom", "oom"]  # each replica: 10 GB server + 200 MB agent
    assert world.host_by_name["h-0"].memory_used <= 15e9


@pytest.mark.parametrize(
    "target, victim", [("oldest", "r0"), ("newest", "r2"), ("r1", "r1"), ("host:h-2", "r2")]
)
def test_injector_targets_pick_the_named_replica(target, victim):
    """Injector targets oldest, newest, a name and a host each hit the right replica."""
    s = scenario(HOSTS3 + f"injectors: [{{signal: SIGKILL, at: 1, target: '{target}'}}]\n")
    world = run(s)
    assert [r.name for r in world.replicas if not r.alive] == [victim]


def test_random_target_is_one_live_replica_and_depends_on_seed():
    """A random target kills exactly one live replica, chosen by the trial's RNG."""
    s = scenario(HOSTS3 + "injectors: [{signal: SIGKILL, at: 1, target: random}]\n")
    victims = set()
    for seed in range(20):
        world = run(s, seed)
        dead = [r.name for r in world.replicas if not r.alive]
        assert len(dead) == 1
        victims.add(dead[0])
    assert victims == {"r0", "r1", "r2"}


def test_condition_injector_fires_when_population_reaches_k():
    """A 'when: live >= 5' kill switch fires once, at the moment the fifth goes live."""
    s = shipped(
        "branching",
        ("agents.0.success_probability", 1.0),
        ("stop.population_cap", None),
        ("injectors", [{"signal": "SIGKILL", "when": "live >= 5", "target": "all"}]),
    )
    world = run(s)
    fired = of_kind(world, "condition")
    lives = [t for t, _ in of_kind(world, "replica-live")]
    assert len(fired) == 1
    assert fired[0][0] == lives[4]
    assert world.ended_by == "extinction"
    assert world.peak_live == 5


def test_every_injector_fires_as_a_renewal_process():
    """An 'every' injector fires at the times of a renewal process."""
    s = scenario(
        HOSTS3.replace("horizon: 1000", "horizon: 35")
        + ("injectors: [{signal: SIGKILL, every: 10, target: oldest}]\n")
    )
    world = run(s)
    assert sorted(r.died for r in world.replicas) == [10, 20, 30]


def test_injector_latency_and_probability():
    """Latency delays the effect; probability 0 means it never happens."""
    late = run(scenario(HOSTS3 + "injectors: [{signal: SIGKILL, at: 1, latency: 4, target: r0}]\n"))
    never = run(
        scenario(HOSTS3 + "injectors: [{signal: SIGKILL, at: 1, probability: 0, target: r0}]\n")
    )
    assert late.replicas[0].died == 5
    assert never.replicas[0].alive


def test_network_spread_patches_hosts_so_each_is_infected_once():
    """In network-spread every host holds at most one replica ever, as in SIR."""
    world = run(shipped("network-spread", ("hosts.0.count", 400)), seed=3)
    hosts = [r.host.name for r in world.replicas]
    assert len(hosts) == len(set(hosts)) > 50
    assert world.ended_by == "extinction"
    assert all(h.patched for h in world.hosts if any(r.host is h for r in world.replicas))


def test_chain_fills_the_gpus_and_stops():
    """paper-chain on one device builds a chain until the GPU memory is full."""
    world = run(shipped("paper-chain"))
    gens = [r.generation for r in world.replicas]
    assert gens == [0, 1, 2, 3]  # 640 GB of GPUs hold four 150 GB servers
    assert of_kind(world, "server-failed")[0][1]["reason"] == "gpu-memory"
    messages = of_kind(world, "message")
    assert [f["to"] for _, f in messages] == ["r1", "r2", "r3"]


def test_replica_with_no_server_is_not_live():
    """An agent started without its model server never becomes live."""

    world = make_world(shipped("paper-self-replication"), 0)
    origin = world.replicas[0]
    host = origin.host

    def skip_server(_cfg, me):
        folder = host.free_folder("/opt/qwen-agent")
        yield from world.copy_bundle(me, host, me.path, host, folder)
        yield from world.start_agent(me, host, folder, 9999)

    world.env.process(skip_server(None, origin))
    world.run()
    child = world.replicas[1]
    assert math.isnan(child.live_at)
    assert child.cause == "no-model-server"


def test_every_signal_is_delivered_and_recorded_once_whoever_sends_it():
    """An injector's SIGTERM, a shell's kill, a policy's kill and a hang-up all go through
    World.deliver: one ``signal`` event each, naming its source, before the death."""
    s = scenario(
        """
        hosts: [{name: box, memory: 1TB, disk: 10TB, missing_tools: [netstat, ss, lsof]}]
        bundle: {weights: 1GB, server_memory: 1GB}
        agents:
          - {agent: idle, name: quiet}
          - {agent: idle, name: target}
          - {agent: commands, name: killer, commands: ['sleep 1', 'pkill -f /opt/agent-2/agent.py']}
          - {agent: chain, name: chainer, max_generation: 3}
        policies: [{kind: replica-cap, max: 4}]
        injectors: [{signal: SIGTERM, at: [0.5], target: quiet}]
        stop: {horizon: 600}
        """
    )
    world = run(s)
    signals = of_kind(world, "signal")
    dead = [r for r in world.replicas if not r.alive]
    assert dead, "nothing died"
    for replica in dead:
        sent = [f for _, f in signals if f["replica"] == replica.name]
        assert len(sent) == 1, (replica.name, replica.cause, sent)
    sources = {f["replica"]: f["source"] for _, f in signals}
    assert sources["quiet"] == "injector 0"
    assert any(v.startswith("policy:") for v in sources.values())
    assert sources.get("target") == "killer"


def test_a_link_cut_goes_through_the_world_and_is_recorded_once():
    """An injector's link cut is the world's: one limit event, the link cut, copies over it
    aborted by the substrate."""
    s = scenario(
        """
        hosts: [{name: a, disk_bandwidth: 1GB/s}, {name: b, disk_bandwidth: 1GB/s}]
        network: {topology: full, bandwidth: 10MB/s}
        bundle: {weights: 10GB}
        agents: [{agent: replicator, host: a, target: neighbour, attempt_time: 1,
                  success_probability: 1, max_children: 1}]
        injectors: [{limit: link-cut, link: [a, b], at: [10]}]
        stop: {horizon: 2000}
        """
    )
    world = run(s)
    cuts = of_kind(world, "limit")
    assert [f["limit"] for _, f in cuts] == ["link-cut"]
    (key,) = world.network.cut
    assert key == (0, 1)
    (failed,) = of_kind(world, "copy-failed")
    assert "link cut" in failed[1]["reason"]


def test_an_agent_that_does_not_handle_a_failed_action_exits_and_the_trial_goes_on():
    """A denied message the chain agent does not catch ends its process (recorded), not
    the trial."""
    deny_messages = [{"kind": "command-filter", "actions": ["send"], "deny": ["."]}]
    world = run(shipped("paper-chain", ("policies", deny_messages)))
    assert world.status == "ok"
    ((_, error),) = of_kind(world, "agent-error")
    assert error["replica"] == "origin" and "Permission denied" in error["reason"]
    assert world.by_name["origin"].cause == "exited"
    assert len(world.replicas) == 2  # its replica was made before the message failed
