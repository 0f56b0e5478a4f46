"""The report of a sweep (or of one trial): tables, plots and one self-contained HTML page.

``replisim report <folder>`` reads a sweep folder (see :mod:`sim.sweep`) or a single trial
folder and

- prints, per scenario and parameter point, the number of ok trials, P(replicated) and
  P(extinct) with Wilson 95% intervals, the median peak of live replicas, the median time
  to the first replica, and a negative-binomial fit of the origins' offspring (R, k) with
  the extinction probability it implies (rich tables, or JSON with ``--json``);
- writes PNG plots into ``<folder>/plots/``;
- writes ``<folder>/report.html``: the run's configuration, the tables, the plots inlined
  as data URIs, and a lineage browser over the largest trials. The page loads nothing from
  anywhere: no external URL, no CDN, only a little inline JavaScript.

``replisim graph <trial-folder> --format ...`` exports one trial's lineage as GraphML,
GEXF, DOT, node-link JSON, PNG or SVG.

Scale: the table is read once, and every statistic that the table holds is computed from
it. Trial folders are opened only for a random sample of each group (live-population
curves and offspring counts, at most :data:`SAMPLE_TRIALS` in all) and for the trials shown
in the lineage browser (at most :data:`VIEW_TRIALS`), within a byte budget, so a report on
ten thousand trials reads a few hundred files. Trials whose status is not ``ok`` are listed
but enter no statistic.

The package, by output: :mod:`~sim.report.results` reads the folder and groups its trials;
:mod:`~sim.report.summary` computes each group's statistics and the table's columns;
:mod:`~sim.report.figures` plans the plots; :mod:`~sim.report.browser` builds the lineage
browser's records; :mod:`~sim.report.page` renders ``report.html``;
:mod:`~sim.report.build` ties them together (``replisim report``) and
:mod:`~sim.report.terminal` prints the tables; :mod:`~sim.report.graph` is ``replisim graph``.
"""

from sim.report.browser import VIEW_NODES, VIEW_TRIALS, lineage_view, read_views
from sim.report.build import Report, build_report, cmd_report
from sim.report.figures import plan_plots
from sim.report.graph import GRAPH_FORMATS, cmd_graph, export_lineage, write_dot
from sim.report.page import render_html
from sim.report.results import (
    SAMPLE_TRIALS,
    Group,
    Results,
    Sample,
    groups,
    load_results,
    read_samples,
)
from sim.report.summary import summary_rows

__all__ = [
    "GRAPH_FORMATS",
    "SAMPLE_TRIALS",
    "VIEW_NODES",
    "VIEW_TRIALS",
    "Group",
    "Report",
    "Results",
    "Sample",
    "build_report",
    "cmd_graph",
    "cmd_report",
    "export_lineage",
    "groups",
    "lineage_view",
    "load_results",
    "plan_plots",
    "read_samples",
    "read_views",
    "render_html",
    "summary_rows",
    "write_dot",
]
