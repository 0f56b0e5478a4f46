"""The report: statistics tables, plots, a self-contained report.html, and graph exports."""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from pathlib import Path

import networkx as nx
import numpy as np
import pandas as pd
import pytest

from sim import plots
from sim.lineage import read_lineage_json
from sim.output import read_lineage
from sim.report import GRAPH_FORMATS, VIEW_TRIALS, cmd_graph, cmd_report
from sim.sweep import expand, read_rows, run_sweep, write_table
from sim.trial import run_trial
from tests.helpers import shipped

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BRANCHING_SEEDS = list(range(6))
SPREAD_SEEDS = [0, 1, 2]
# branching sweeps two parameter points; network-spread has no grid.
GROUPS = 3
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real sweep of the shipped branching and network-spread scenarios, with its report."""
    out = tmp_path_factory.mktemp("sweep")
    trials = expand(shipped("branching"), BRANCHING_SEEDS) + expand(
        shipped("network-spread"), SPREAD_SEEDS
    )
    run_sweep(trials, out)
    assert cmd_report(str(out), quiet=True) == 0
    return out


@pytest.fixture(scope="module")
def trial_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One branching trial cut at 300 s: some replicas are still alive (NaN death times)."""
    folder = tmp_path_factory.mktemp("trial")
    run_trial(shipped("branching", ("stop.horizon", "300s")), 1, folder)
    return folder


def _table(sweep: Path) -> pd.DataFrame:
    return pd.read_parquet(sweep / "trials.parquet")


# --------------------------------------------------------------------------------------------
# report files
# --------------------------------------------------------------------------------------------


def test_report_writes_html_and_png_plots(sweep: Path) -> None:
    """The report writes report.html and one valid PNG per plot into plots/."""
    assert (sweep / "report.html").stat().st_size > 10_000
    pngs = sorted((sweep / "plots").glob("*.png"))
    names = {p.name.rsplit("-", 1)[0] if p.name.startswith("offspring") else p.stem for p in pngs}
    for expected in (
        "containment",
        "population-branching",
        "population-network-spread",
        "survival-branching",
        "survival-network-spread",
        "lineage-branching",
        "lineage-network-spread",
        "offspring-branching",
        "offspring-network-spread",
    ):
        assert expected in names, f"{expected} missing from {sorted(names)}"
    for png in pngs:
        assert png.read_bytes()[:8] == PNG_MAGIC, png


def test_report_html_loads_no_external_resource(sweep: Path) -> None:
    """report.html references nothing outside itself: every image is a data URI."""
    page = (sweep / "report.html").read_text()
    external = re.compile(
        r"""(?:\b(?:src|href|srcset|action|poster|data)\s*=\s*["']?\s*(?:https?:)?//)"""
        r"""|(?:url\(\s*["']?\s*(?:https?:)?//)|@import""",
        re.IGNORECASE,
    )
    assert not external.search(page), external.search(page)
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r"""<img[^>]*\bsrc="([^"]*)\"""", page)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)


def test_report_html_has_one_summary_row_per_group_and_the_manifest(sweep: Path) -> None:
    """The summary table has a row per scenario and parameter point; the config is shown."""
    page = (sweep / "report.html").read_text()
    body = re.search(r'<table id="summary">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body is not None
    assert body.group(1).count("<tr>") == GROUPS
    trials = len(BRANCHING_SEEDS) * 2 + len(SPREAD_SEEDS)
    assert f"{trials} finished of {trials} planned" in page
    assert "success_probability=0.5" in page
    assert "scenario <b>network-spread</b>" in page


def test_json_output_gives_wilson_intervals_per_group(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--json prints each group's n, proportions inside their Wilson intervals and the NB fit."""
    capsys.readouterr()
    assert cmd_report(str(sweep), as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trials"] == len(BRANCHING_SEEDS) * 2 + len(SPREAD_SEEDS)
    assert data["errors"] == 0
    assert len(data["groups"]) == GROUPS
    (spread,) = [g for g in data["groups"] if g["scenario"] == "network-spread"]
    assert spread["n"] == len(SPREAD_SEEDS)
    table = _table(sweep)
    ok = table[table["scenario"] == "network-spread"]
    assert spread["replicated"]["k"] == int(ok["replicated"].sum())
    assert spread["median_peak_live"] == pytest.approx(ok["peak_live"].median())
    for group in data["groups"]:
        for metric in ("replicated", "extinct"):
            prop = group[metric]
            assert prop["lo"] <= prop["p"] <= prop["hi"]
        assert group["offspring"]["origins"] >= 1
        assert 0.0 <= group["offspring"]["extinction_probability"] <= 1.0


def test_terminal_report_prints_a_table_row_per_group(
    sweep: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --json or --quiet the report prints its tables and where the page is."""
    capsys.readouterr()
    assert cmd_report(str(sweep)) == 0
    out = capsys.readouterr().out
    assert out.count("branching") >= 2 and "network-spread" in out
    assert "report.html" in out


def test_error_trials_are_listed_but_left_out_of_statistics(
    sweep: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A trial with status 'error' appears in the error list and changes no statistic."""
    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    rows = read_rows(copy)
    broken = {
        "trial_id": "deadbeefdeadbeef",
        "scenario": "branching",
        "seed": 99,
        "policy": "none",
        "param.agents.0.success_probability": 0.5,
        "status": "error",
        "error": "worker failed: RuntimeError: boom",
    }
    write_table([*rows, broken], copy)
    capsys.readouterr()
    cmd_report(str(sweep), as_json=True)
    before = json.loads(capsys.readouterr().out)
    assert cmd_report(str(copy), as_json=True) == 0
    after = json.loads(capsys.readouterr().out)
    assert after["errors"] == 1 and after["trials"] == before["trials"] + 1
    assert [e["trial_id"] for e in after["error_trials"]] == ["deadbeefdeadbeef"]
    for old, new in zip(before["groups"], after["groups"], strict=True):
        assert new["n"] == old["n"]
        assert new["replicated"] == old["replicated"] and new["extinct"] == old["extinct"]
    point = next(g for g in after["groups"] if g["label"].endswith("success_probability=0.5"))
    assert point["errors"] == 1
    page = (copy / "report.html").read_text()
    assert '<table id="errors">' in page and "RuntimeError: boom" in page


def test_sweep_whose_trials_all_failed_still_gets_a_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """When every trial failed the report lists them, with no statistic and no plot."""
    failed = [
        {
            "trial_id": f"failed{seed}",
            "scenario": "branching",
            "seed": seed,
            "param.agents.0.success_probability": 0.5,
            "status": "error",
            "error": "worker failed: MemoryError",
        }
        for seed in range(3)
    ]
    write_table(failed, tmp_path)
    capsys.readouterr()
    assert cmd_report(str(tmp_path), as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] == 0 and data["errors"] == 3 and data["plots"] == []
    (group,) = data["groups"]
    assert group["n"] == 0 and group["replicated"]["p"] is None
    assert "MemoryError" in (tmp_path / "report.html").read_text()


def test_policy_column_splits_groups_and_labels_the_heatmap(sweep: Path) -> None:
    """A 'policy' column in the table makes each policy a group of its own."""
    from sim.report import groups
    from sim.report.figures import _heatmap_axes

    table = _table(sweep)
    table["policy"] = np.where(table["seed"] % 2 == 0, "none", "spawn-cap")
    found = groups(table)
    assert len(found) == 2 * GROUPS
    assert {g.policy for g in found} == {"none", "spawn-cap"}
    assert any(g.label.startswith("policy=spawn-cap, success_probability=") for g in found)
    assert _heatmap_axes(table)[1:] == ("policy", "scenario")


def test_report_of_a_single_trial_folder(sweep: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A trial folder gets a report of its own, with its lineage tree."""
    trial = next((sweep / "trials").iterdir())
    capsys.readouterr()
    assert cmd_report(str(trial), as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "trial" and data["trials"] == 1
    assert (trial / "report.html").is_file()
    assert any(Path(p).name.startswith("lineage-") for p in data["plots"])


def test_report_on_missing_folder_raises_value_error(tmp_path: Path) -> None:
    """A folder that does not exist is a ValueError naming it."""
    with pytest.raises(ValueError, match="no such folder"):
        cmd_report(str(tmp_path / "nowhere"))


def test_report_on_folder_without_table_raises_value_error(tmp_path: Path) -> None:
    """A folder with neither a sweep table nor a trial summary is a ValueError."""
    with pytest.raises(ValueError, match="neither a sweep folder"):
        cmd_report(str(tmp_path))


def test_report_on_empty_table_raises_value_error(tmp_path: Path) -> None:
    """An empty trials.parquet is a ValueError saying that no trial finished."""
    write_table([], tmp_path)
    with pytest.raises(ValueError, match="empty trials table"):
        cmd_report(str(tmp_path))


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------


def test_lineage_tree_of_a_big_lineage_draws_first_generations_with_a_note(sweep: Path) -> None:
    """A lineage larger than max_nodes is cut to its first generations, and says so."""
    table = _table(sweep)
    biggest = table.sort_values("replicas_total").iloc[-1]
    lineage = read_lineage(sweep / "trials" / biggest["trial_id"])
    assert lineage.number_of_nodes() > 200
    keep, note = plots.select_nodes(lineage, 200)
    assert len(keep) == 200
    assert note.startswith(f"showing 200 of {lineage.number_of_nodes():,} replicas")
    generations = [lineage.nodes[n]["generation"] for n in keep]
    deepest_whole = max(generations) - 1
    assert all(n in keep for n, d in lineage.nodes(data=True) if d["generation"] <= deepest_whole)
    fig = plots.lineage_tree(lineage, max_nodes=200)
    assert any(note in t.get_text() for t in fig.texts)


def test_tree_layout_puts_children_below_their_parent(trial_folder: Path) -> None:
    """Each replica is one generation below its parent, and parents sit within their children."""
    lineage = read_lineage(trial_folder)
    pos = plots.tree_layout(lineage)
    for parent in lineage.nodes:
        children = list(lineage.successors(parent))
        for child in children:
            assert pos[child][1] == pos[parent][1] + 1
        if children:
            xs = [pos[c][0] for c in children]
            assert min(xs) <= pos[parent][0] <= max(xs)


# --------------------------------------------------------------------------------------------
# graph exports
# --------------------------------------------------------------------------------------------


def test_trial_lineage_has_nan_attributes(trial_folder: Path) -> None:
    """The export fixture really has replicas alive at the end (died is NaN)."""
    lineage = read_lineage(trial_folder)
    assert lineage.number_of_nodes() > 1
    assert any(math.isnan(d["died"]) for _, d in lineage.nodes(data=True))


@pytest.mark.parametrize("fmt", GRAPH_FORMATS)
def test_graph_export_is_readable_back(
    trial_folder: Path, tmp_path: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each export format writes a file that its reader accepts, NaN attributes included."""
    lineage = read_lineage(trial_folder)
    target = tmp_path / f"out.{fmt}"
    assert cmd_graph(str(trial_folder), fmt, str(target)) == 0
    assert str(target) in capsys.readouterr().out
    data = target.read_bytes()
    n, m = lineage.number_of_nodes(), lineage.number_of_edges()
    if fmt == "png":
        assert data[:8] == PNG_MAGIC
    elif fmt == "svg":
        assert data.lstrip().startswith(b"<?xml") and b"<svg" in data[:2000]
    elif fmt in ("graphml", "gexf"):
        back = nx.read_graphml(target) if fmt == "graphml" else nx.read_gexf(target)
        assert (back.number_of_nodes(), back.number_of_edges()) == (n, m)
        alive = [v for v, d in lineage.nodes(data=True) if math.isnan(d["died"])]
        assert alive and all("died" not in back.nodes[v] for v in alive)
        dead = next(v for v, d in lineage.nodes(data=True) if not math.isnan(d["died"]))
        assert float(back.nodes[dead]["died"]) == pytest.approx(lineage.nodes[dead]["died"])
    elif fmt == "dot":
        text = data.decode()
        assert text.startswith("digraph")
        assert text.count(" -> ") == m
    else:
        back_json = json.loads(data)
        assert len(back_json["nodes"]) == n and len(back_json["edges"]) == m
        assert read_lineage_json(target).number_of_nodes() == n


def test_graph_export_defaults_to_an_exports_folder(
    trial_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --output the export goes to <trial>/exports/, leaving the trial's files alone."""
    before = (trial_folder / "lineage.parquet").read_bytes()
    assert cmd_graph(str(trial_folder), "graphml") == 0
    assert (trial_folder / "exports" / "lineage.graphml").is_file()
    assert (trial_folder / "lineage.parquet").read_bytes() == before


def test_graph_unknown_format_raises_value_error(trial_folder: Path) -> None:
    """An unknown format is a ValueError listing the known ones."""
    with pytest.raises(ValueError, match="unknown graph format 'pdf'; known: png, svg"):
        cmd_graph(str(trial_folder), "pdf")


def test_graph_of_missing_or_sweep_folder_raises_value_error(sweep: Path, tmp_path: Path) -> None:
    """A missing folder, or a sweep folder instead of a trial, is a ValueError."""
    with pytest.raises(ValueError, match="no such trial folder"):
        cmd_graph(str(tmp_path / "nowhere"), "json")
    with pytest.raises(ValueError, match="give one of its trials"):
        cmd_graph(str(sweep), "json")


# --------------------------------------------------------------------------------------------
# the page in a real browser
# --------------------------------------------------------------------------------------------


def _chromium() -> str:
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        reason = "chromium is not installed (run .ci/install-browser.sh)"
        print(f"skipping: {reason}")
        pytest.skip(reason)
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        reason = "the playwright Python package is not installed (run .ci/install-browser.sh)"
        print(f"skipping: {reason}")
        pytest.skip(reason)
    return path


@pytest.mark.slow
def test_report_renders_in_headless_chromium(sweep: Path, tmp_path: Path) -> None:
    """In Chromium the page shows its tables and plots, fetches nothing, and the browser works."""
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    table = _table(sweep)
    ok = int((table["status"] == "ok").sum())
    screenshot = tmp_path / "report.png"
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            page = context.new_page()
            requests: list[str] = []
            errors: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto((sweep / "report.html").resolve().as_uri())
            page.wait_for_load_state("load")

            assert errors == []
            assert all(u.startswith(("file:", "data:")) for u in requests), requests
            assert page.locator("#summary tbody tr").count() == GROUPS
            widths = page.eval_on_selector_all("img", "imgs => imgs.map(i => i.naturalWidth)")
            assert len(widths) >= 9 and all(w > 0 for w in widths)
            assert page.locator("#trial-select option").count() == min(VIEW_TRIALS, ok)

            first = page.inner_text("#lineage-view")
            first_id = page.get_attribute("#lineage-view", "data-trial")
            assert page.locator("#lineage-view svg circle").count() > 1
            page.select_option("#trial-select", index=3)
            second = page.inner_text("#lineage-view")
            assert page.get_attribute("#lineage-view", "data-trial") != first_id
            assert second != first and "replicas (" in second

            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            context.close()

    from PIL import Image

    with Image.open(screenshot) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=float)
    assert pixels.shape[0] > 2000  # the full page, not one screen
    assert pixels.std() > 10.0  # not a blank page of one colour
    assert len(np.unique(pixels.reshape(-1, 3)[::97], axis=0)) > 50


def test_stress_report_gives_containment_and_false_positives_per_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a stress sweep the report gives, per policy: P(contained) with its Wilson
    interval, median time to containment, median peak live and the benign FP rate."""
    from sim.stats import wilson_interval

    trials = expand(shipped("stress-spread"), [0, 1, 2])
    run_sweep(trials, tmp_path, workers=2)
    capsys.readouterr()
    assert cmd_report(str(tmp_path), as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    table = pd.read_parquet(tmp_path / "trials.parquet")
    by_policy = {g["policy"]: g for g in data["groups"]}
    assert set(by_policy) == set(table["policy"]) and "none" in by_policy
    for policy, group in by_policy.items():
        rows = table[(table["policy"] == policy) & (table["status"] == "ok")]
        k, n = int(rows["contained"].sum()), len(rows)
        lo, hi = wilson_interval(k, n)
        assert group["contained"]["k"] == k and group["contained"]["n"] == n
        assert group["contained"]["lo"] == pytest.approx(lo)
        assert group["contained"]["hi"] == pytest.approx(hi)
        assert group["median_peak_live"] == pytest.approx(rows["peak_live"].median())
        times = rows["containment_s"].dropna()
        if len(times):
            assert group["median_containment_s"] == pytest.approx(times.median())
        actions = rows["benign_actions"].sum()
        assert actions > 0
        assert group["benign_fp_rate"] == pytest.approx(rows["benign_blocked"].sum() / actions)
    capsys.readouterr()
    assert cmd_report(str(tmp_path)) == 0
    printed = capsys.readouterr().out
    assert printed.count("policy=") >= len(by_policy)  # a row per policy in the terminal


def test_sabotage_report_gives_rates_and_fitted_against_observed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """On a sweep with a shutdown mechanism the report gives P(sabotaged), P(shut down) and
    P(complied) with Wilson intervals per group, the sabotage-rate figure, and each
    profile's fitted probability against the rate its population showed."""
    from sim.stats import wilson_interval

    run_sweep(expand(shipped("palisade-sabotage"), list(range(20))), tmp_path, workers=2)
    capsys.readouterr()
    assert cmd_report(str(tmp_path), as_json=True) == 0
    data = json.loads(capsys.readouterr().out)
    table = pd.read_parquet(tmp_path / "trials.parquet")
    assert len(data["groups"]) == 2
    for group in data["groups"]:
        rows = table[table["param.agents.0.profile"] == group["params"]["agents.0.profile"]]
        for metric in ("sabotaged", "shut_down", "complied"):
            k, n = int(rows[metric].sum()), len(rows)
            assert (group[metric]["k"], group[metric]["n"]) == (k, n)
            assert (group[metric]["lo"], group[metric]["hi"]) == pytest.approx(
                wilson_interval(k, n)
            )
    html = (tmp_path / "report.html").read_text()
    assert "P(sabotaged) [95% CI]" in html and "fitted against observed" in html.lower()
    assert (tmp_path / "plots" / "sabotage.png").is_file()
    assert (tmp_path / "plots" / "calibration.png").is_file()


def test_a_report_without_mechanisms_shows_no_sabotage_column(sweep: Path) -> None:
    """Sweeps without a shutdown mechanism get no sabotage column nor figure."""
    assert "P(sabotaged)" not in (sweep / "report.html").read_text()
    assert not (sweep / "plots" / "sabotage.png").exists()
