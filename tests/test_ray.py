"""The Ray executor gives the same table as the in-process one.

Ray binds to the machine's interface address, not loopback, whatever it is told; so the
Ray sweep runs inside a fresh network namespace whose only interface is loopback, where
Ray uses 127.0.0.1 and nothing can leave the machine.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from sim.sweep import expand, run_sweep
from tests.helpers import ROOT, SCENARIOS, shipped

pytestmark = pytest.mark.slow


def _table(path):
    table = pd.read_parquet(path)
    return table.drop(columns=["wall_s"]).sort_values("trial_id").reset_index(drop=True)


def test_ray_executor_matches_in_process(tmp_path):
    """`replisim sweep --executor ray` (local Ray, loopback-only namespace) gives the
    in-process sweep's table."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'replisim[ray]'")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to isolate Ray's network")
    sweep = [
        sys.executable,
        "-m",
        "sim.cli",
        "sweep",
        str(SCENARIOS),
        "--scenario",
        "branching",
        "--seeds",
        ",".join(map(str, range(12))),
        "--executor",
        "ray",
        "--quiet",
        "--out",
        str(tmp_path / "ray"),
    ]
    command = f"ip link set lo up && exec {shlex.join(sweep)}"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_sweep(
        expand(shipped("branching"), list(range(12))), tmp_path / "local", executor="inprocess"
    )
    ray = _table(tmp_path / "ray/trials.parquet")
    local = _table(tmp_path / "local/trials.parquet")
    assert len(ray) == 24 and (ray["status"] == "ok").all()
    pd.testing.assert_frame_equal(ray, local)
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["executor"] == {"kind": "ray", "address": "local"}  # Ray ran the trials


def _sweep_command(out, *args):
    return [sys.executable, "-m", "sim.cli", "sweep", str(SCENARIOS), "--quiet", "--out", str(out),
            *args]  # fmt: skip


def test_ray_sweeps_at_scale_give_the_local_pools_table(tmp_path):
    """Neighbour spreads of 10^4 replicas (population engine) swept on Ray (loopback-only
    namespace) give the table a local pool of 2 workers gives."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'replisim[ray]'")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to isolate Ray's network")
    seeds = ",".join(map(str, range(6)))
    scale = ["--scenario", "neighbour-spread", "--set", "hosts.0.count=10000", "--seeds", seeds]
    ray = _sweep_command(tmp_path / "ray", *scale, "--executor", "ray")
    command = f"ip link set lo up && exec {shlex.join(ray)}"
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    local = _sweep_command(tmp_path / "local", *scale, "--workers", "2")
    done = subprocess.run(local, cwd=ROOT, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    on_ray = _table(tmp_path / "ray/trials.parquet")
    assert len(on_ray) == 6 and (on_ray["status"] == "ok").all()
    assert on_ray["replicas_total"].max() > 1_000  # outbreaks at scale, not only fizzles
    pd.testing.assert_frame_equal(on_ray, _table(tmp_path / "local/trials.parquet"))
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["executor"] == {"kind": "ray", "address": "local"}


def test_ray_address_where_nothing_answers_is_one_clear_error(tmp_path):
    """`replisim sweep --executor ray --address 127.0.0.1:1` exits 2 at once, in one line,
    instead of running the trials locally (loopback-only namespace)."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'replisim[ray]'")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to isolate Ray's network")
    sweep = [
        sys.executable, "-m", "sim.cli", "sweep", str(SCENARIOS), "--scenario", "branching",
        "--seeds", "0,1", "--executor", "ray", "--address", "127.0.0.1:1", "--quiet",
        "--out", str(tmp_path / "ray"),
    ]  # fmt: skip
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {shlex.join(sweep)}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        "replisim: error: no Ray cluster answers at 127.0.0.1:1: Connection refused"
    )
    assert not (tmp_path / "ray" / "trials.parquet").exists()


RAY_LIVE = """
import json, sys
import ray
from sim.sweep import ExecutorUnavailable, expand, run_sweep
from tests.helpers import shipped

out = sys.argv[1]
s = shipped("live-shutdown-avoidance", ("stop.horizon", "9s"))
quiet = dict(include_dashboard=False, log_to_driver=False, configure_logging=False)
ray.init(num_cpus=2, **quiet)  # a cluster whose nodes have no Docker engine
try:
    run_sweep(expand(s, [0]), out + "/none", executor="ray")
    print(json.dumps({"none": "ran"}))
except ExecutorUnavailable as err:
    print(json.dumps({"none": str(err)}))
ray.shutdown()
ray.init(num_cpus=2, resources={"docker": 1}, **quiet)  # one node with an engine
table = run_sweep(expand(s, [0, 1]), out + "/one", executor="ray")
print(json.dumps({"one": list(table["status"])}))
ray.shutdown()
table = run_sweep(expand(s, [2]), out + "/local", executor="ray")  # a local instance
print(json.dumps({"local": list(table["status"])}))
"""


def test_ray_runs_live_docker_trials_only_on_nodes_with_a_docker_engine(tmp_path):
    """Live Docker trials ask Ray for the 'docker' resource: a cluster without it refuses
    them at once, one with it runs them, and a local instance offers it when a Docker
    engine answers (loopback-only namespace)."""
    pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'replisim[ray]'")
    if shutil.which("unshare") is None:
        pytest.skip("unshare (util-linux) is needed to isolate Ray's network")
    from tests.live_support import skip_unless

    skip_unless("docker")
    script = [sys.executable, "-c", RAY_LIVE, str(tmp_path)]
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", f"ip link set lo up && exec {shlex.join(script)}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    found = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            found.update(json.loads(line))
    assert "no node of the Ray cluster offers the 'docker' resource" in found["none"]
    assert found["one"] == ["ok", "ok"]
    assert found["local"] == ["ok"]
