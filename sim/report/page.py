"""The self-contained ``report.html``: configuration, tables, plots and the lineage browser."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from sim import plots
from sim.report.browser import VIEW_NODES
from sim.report.results import Results, _plain, _short
from sim.report.summary import _columns, _error_rows

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em auto; max-width: 1400px;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums;
         white-space: nowrap; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #555; }
.note { color: #555; font-size: .9em; }
.error { color: #a00; }
#lineage-svg { overflow: auto; max-height: 650px; border: 1px solid #ddd; margin: .5em 0; }
ul.tree { list-style: none; padding-left: 1.2em; }
#lineage-view > ul.tree { font-size: .85em; padding-left: 0; }
ul.tree li { margin: .1em 0; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 50%;
          margin-right: .3em; vertical-align: middle; }
pre { background: #f7f7f7; padding: .5em; overflow: auto; max-height: 400px; font-size: .8em; }
"""

# Builds the SVG as markup so that no namespace URL is needed in the page.
_JS = """
(function () {
  var data = JSON.parse(document.getElementById('lineage-data').textContent);
  var select = document.getElementById('trial-select');
  var view = document.getElementById('lineage-view');
  var palette = %(palette)s;
  var codes = %(codes)s;
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c];
    });
  }
  function t(v) { return v === null ? '-' : v.toFixed(1) + ' s'; }
  function code(cause) {
    if (codes[cause]) return codes[cause];
    if (cause.indexOf('policy') === 0) return 'P';
    return cause ? cause.charAt(0).toUpperCase() : '';
  }
  function colours(nodes) {
    var count = {}, hosts = [];
    nodes.forEach(function (n) {
      if (!(n[2] in count)) { count[n[2]] = 0; hosts.push(n[2]); }
      count[n[2]] += 1;
    });
    hosts.sort(function (a, b) { return count[b] - count[a] || (a < b ? -1 : 1); });
    var crowded = hosts.length > palette.length, map = {};
    hosts.forEach(function (h, i) {
      map[h] = (i < palette.length && !(crowded && count[h] < 2)) ? palette[i] : '#9a9a9a';
    });
    return map;
  }
  function details(n) {
    var s = 'host ' + n[2] + ', generation ' + n[3] + ', born ' + t(n[4]);
    s += ', live ' + (n[5] === null ? 'never' : 'at ' + t(n[5]));
    s += n[6] === null ? ', alive at end' : ', died ' + t(n[6]) + ' (' + n[7] + ')';
    return s;
  }
  function svg(trial, colour) {
    var nodes = trial.nodes, dx = 16, dy = 46, pad = 20, maxX = 0, maxG = 0, pos = {};
    nodes.forEach(function (n) { maxX = Math.max(maxX, n[8]); maxG = Math.max(maxG, n[3]); });
    nodes.forEach(function (n) { pos[n[0]] = [pad + n[8] * dx, pad + n[3] * dy]; });
    var w = 2 * pad + maxX * dx + 30, h = 2 * pad + maxG * dy;
    var out = ['<svg width="' + w + '" height="' + h + '" viewBox="0 0 ' + w + ' ' + h + '">'];
    nodes.forEach(function (n) {
      var p = pos[n[1]], c = pos[n[0]];
      if (!p) return;
      var m = (p[1] + c[1]) / 2;
      out.push('<path d="M' + p[0] + ' ' + p[1] + 'V' + m + 'H' + c[0] + 'V' + c[1] +
               '" fill="none" stroke="#777" stroke-width="1"/>');
    });
    nodes.forEach(function (n) {
      var c = pos[n[0]], fill = n[5] === null ? 'white' : colour[n[2]];
      out.push('<g class="node"><title>' + esc(n[0] + ': ' + details(n)) + '</title>' +
               '<circle cx="' + c[0] + '" cy="' + c[1] + '" r="5" fill="' + fill +
               '" stroke="' + colour[n[2]] + '" stroke-width="1.5"/>');
      if (n[6] !== null) {
        out.push('<text x="' + (c[0] + 6) + '" y="' + (c[1] + 11) +
                 '" font-size="9" fill="#000">' + esc(code(n[7])) + '</text>');
      }
      out.push('</g>');
    });
    out.push('</svg>');
    return out.join('');
  }
  function list(trial, colour) {
    var kids = {}, roots = [];
    trial.nodes.forEach(function (n) {
      kids[n[0]] = [];
    });
    trial.nodes.forEach(function (n) {
      if (n[1] && kids[n[1]]) kids[n[1]].push(n); else roots.push(n);
    });
    function item(n) {
      var label = '<span class="swatch" style="background:' + colour[n[2]] + '"></span>' +
                  '<b>' + esc(n[0]) + '</b>: ' + esc(details(n));
      if (!kids[n[0]].length) return '<li>' + label + '</li>';
      var open = n[3] < 3 ? ' open' : '';
      return '<li><details' + open + '><summary>' + label + ' &middot; ' + kids[n[0]].length +
             ' child(ren)</summary><ul class="tree">' + kids[n[0]].map(item).join('') +
             '</ul></details></li>';
    }
    return '<ul class="tree">' + roots.map(item).join('') + '</ul>';
  }
  function show(index) {
    var trial = data[index];
    if (!trial) { view.innerHTML = '<p class="note">No trial to show.</p>'; return; }
    var head = '<h3>trial ' + esc(trial.id) + '</h3><p>' + esc(trial.scenario) +
               (trial.params ? ' (' + esc(trial.params) + ')' : '') + ', seed ' +
               esc(trial.seed) + ', ' + esc(trial.replicas_total) + ' replicas live in all';
    if (trial.end !== null) head += ', ended at ' + t(trial.end);
    head += '</p>';
    if (trial.missing) { view.innerHTML = head + '<p class="note">' + esc(trial.missing) +
                                          '</p>'; return; }
    var colour = colours(trial.nodes);
    var note = trial.note ? '<p class="note">' + esc(trial.note) + '</p>' : '';
    view.innerHTML = head + note + '<div id="lineage-svg">' + svg(trial, colour) + '</div>' +
                     '<h4>replicas (' + trial.shown + ' of ' + trial.total + ')</h4>' +
                     list(trial, colour);
    view.setAttribute('data-trial', trial.id);
    // Wide trees: start scrolled to the first origin rather than to the left edge.
    var box = document.getElementById('lineage-svg');
    if (box && trial.nodes.length) {
      box.scrollLeft = Math.max(0, 20 + trial.nodes[0][8] * 16 - box.clientWidth / 2);
    }
  }
  select.addEventListener('change', function () { show(select.selectedIndex); });
  show(0);
})();
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table_html(headers: list[str], rows: list[list[str]], table_id: str, numeric: set[int]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{_e(c)}</td>' if i in numeric else f"<td>{_e(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _config_html(results: Results) -> str:
    m = results.manifest
    table = results.table
    items: list[tuple[str, str]] = [("folder", str(results.root.resolve()))]
    if results.kind == "trial":
        items.append(("kind", "a single trial"))
    for key in ("replisim", "git_revision", "python", "scenario_file", "scenario_file_sha256"):
        if m.get(key):
            items.append((key.replace("_", " "), str(m[key])))
    if m.get("packages"):
        items.append(("packages", ", ".join(f"{k} {v}" for k, v in sorted(m["packages"].items()))))
    planned = len(m.get("trials", [])) or len(table)
    items.append(("trials", f"{len(table):,} finished of {planned:,} planned"))
    if "seed" in table:
        seeds = pd.to_numeric(table["seed"], errors="coerce").dropna()
        if len(seeds):
            items.append(
                ("seeds", f"{seeds.nunique():,} distinct, {int(seeds.min())}–{int(seeds.max())}")
            )
    params = sorted(c.removeprefix("param.") for c in table.columns if c.startswith("param."))
    items.append(("swept parameters", ", ".join(params) or "none"))
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in items)
    out = [f'<table id="config">{rows}</table>']
    configs = dict(m.get("scenarios") or {})
    if results.kind == "trial" and (results.root / "scenario.json").is_file():
        with contextlib.suppress(ValueError):
            config = json.loads((results.root / "scenario.json").read_text())
            if isinstance(config, dict):
                configs[str(config.get("name", "scenario"))] = config
    for name, config in sorted(configs.items()):
        description = config.get("description") if isinstance(config, dict) else None
        text = json.dumps(config, indent=1, sort_keys=True, default=str)
        if len(text) > 100_000:
            text = text[:100_000] + "\n... (cut)"
        out.append(
            f"<details><summary>scenario <b>{_e(name)}</b>"
            + (f": {_e(description)}" if description else "")
            + f"</summary><pre>{_e(text)}</pre></details>"
        )
    return "".join(out)


def _image_html(path: Path, caption: str) -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{encoded}" alt="{_e(path.name)}">'
        f"<figcaption>{_e(path.name)}: {_e(caption)}</figcaption></figure>"
    )


def render_html(
    results: Results,
    rows: list[dict[str, Any]],
    figures: list[tuple[Path, str]],
    views: list[dict[str, Any]],
    notes: list[str],
) -> str:
    """The report page: configuration, tables, plots and the lineage browser, self-contained."""
    table = results.table
    ok = int((table["status"] == "ok").sum())
    columns = _columns(rows)
    summary = _table_html(
        [c[0] for c in columns],
        [[cell(r) for _, _, cell in columns] for r in rows],
        "summary",
        set(range(2, len(columns))),
    )
    errors = _error_rows(table)
    if len(errors):
        error_html = (
            f"<h2>Trials with errors ({len(errors):,})</h2>"
            '<p class="note">Listed here, left out of every statistic.</p>'
            + _table_html(
                list(errors.columns),
                [[_short(v) for v in r] for r in errors.head(500).itertuples(index=False)],
                "errors",
                set(),
            )
        )
        if len(errors) > 500:
            error_html += f'<p class="note">... and {len(errors) - 500:,} more.</p>'
    else:
        error_html = ""
    options = "".join(
        f'<option value="{i}">{_e(v["id"])} · {_e(v["scenario"])}'
        + (f" ({_e(v['params'])})" if v["params"] else "")
        + f" · seed {_e(v['seed'])} · {_e(v['replicas_total'])} replicas</option>"
        for i, v in enumerate(views)
    )
    payload = json.dumps(_plain(views), separators=(",", ":")).replace("<", "\\u003c")
    codes = {cause: code for cause, (code, _) in plots.CAUSE_STYLES.items()}
    script = _JS % {
        "palette": json.dumps(list(plots._PALETTE)),
        "codes": json.dumps(codes),
    }
    legend = ", ".join(f"{code} = {cause}" for cause, code in codes.items())
    generated = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    title = f"replisim report: {results.root.resolve().name}"
    note_html = "".join(f'<p class="note">{_e(n)}</p>' for n in notes)
    figures_html = "".join(_image_html(p, c) for p, c in figures) or (
        '<p class="note">No plots: no trial finished ok.</p>'
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{_e(title)}</h1>
<p>{len(table):,} trials: {ok:,} ok, {len(table) - ok:,} with errors. Generated {generated}.</p>
<h2>Configuration</h2>
{_config_html(results)}
<h2>Results per scenario and parameter point</h2>
<p class="note">Only trials with status ok count (n ok). P(replicated): at least one replica
besides the origin was ever live; P(extinct): no replica was running at the end (a run
stopped by its population cap is not extinct). Intervals are Wilson 95%. R and k are the
maximum-likelihood negative-binomial fit of the origins' final offspring counts (one per
trial, from a sample of trial folders; an origin still running at the end is left out),
and P(extinct | NB fit) is the extinction probability of the branching process they
imply.</p>
{summary}
{note_html}
{error_html}
<h2>Plots</h2>
{figures_html}
<h2>Lineage browser</h2>
<p class="note">The {len(views):,} largest ok trials by replicas live in all; up to
{VIEW_NODES} replicas of each, first generations first. Dots are coloured by host; a
hollow dot was never live; letters mark the cause of death ({_e(legend)}). Hover a dot for
its details.</p>
<label for="trial-select">trial:</label>
<select id="trial-select">{options}</select>
<div id="lineage-view"><noscript>The lineage browser needs JavaScript.</noscript></div>
<script type="application/json" id="lineage-data">{payload}</script>
<script>{script}</script>
</body></html>
"""
