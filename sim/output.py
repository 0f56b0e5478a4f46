"""A trial folder's data files: their schemas, and how they are written and read.

A trial folder holds ``events.parquet`` (every event), ``lineage.parquet`` (one row per
replica), ``live.parquet`` (the live population over time), ``summary.json``,
``scenario.json`` and the agents' own JSONL files (transcripts, recorded model answers,
shell logs). The Parquet files are zstd-compressed and open as they are in pandas
(``pd.read_parquet``), DuckDB (``SELECT * FROM 'events.parquet'``), Polars or Spark.
Folders written before them hold ``events.jsonl`` and ``lineage.json`` instead, and the
population curve as ``live_series`` (``[[time, live], ...]``) in ``summary.json``; every
reader here takes either.

``events.parquet`` (schema version 1), one row per event in the order they happened:

==============  =======  ==================================================================
column          type     what
==============  =======  ==================================================================
``t``           double   when: simulated seconds (a live world: seconds since its start)
``event``       string   the kind: ``replica-start``, ``copy-done``, ``signal``, ...
``replica``     string   the replica the event is about (the actor, for actions)
``host``        string   the host it happened on
``src``         string   copies: the source host
``dst``         string   copies: the destination host
``path``        string   a bundle folder
``parent``      string   ``replica-start``: the parent's name
``generation``  int64    ``replica-start``: the generation (origins are 0)
``port``        int64    a server's port
``bytes``       double   ``copy-start``: the bundle's size in bytes
``ready_at``    double   ``server-start``: when the server answers its health probe
``signal``      string   ``signal``: ``SIGTERM``, ``SIGKILL``...
``grace``       double   ``signal``, ``limit``: seconds from SIGTERM to SIGKILL
``source``      string   who sent a signal or applied a limit
``cause``       string   ``replica-died``: why (``sigkill``, ``oom``, ``policy:<name>``...)
``reason``      string   a failure's message, a policy's reason
``data``        string   every other field of the event, as a JSON object (null if none)
==============  =======  ==================================================================

A field is in its own column when its value has the column's type, and in ``data``
otherwise (a ``null`` parent of an origin, a list, a field of a rarer event); so an event
reads back exactly as recorded: the non-null columns of its row, then ``data``'s fields
(NaN and infinities in ``data`` are written as null, as ``events.jsonl`` had them). In
DuckDB: ``SELECT t, replica, json_extract_string(data, '$.text') FROM 'events.parquet'
WHERE event = 'message'``.

``lineage.parquet`` (schema version 1), one row per replica ever started, in the order
born; the graph is parent -> child:

=====================  =======  ===========================================================
column                 type     what
=====================  =======  ===========================================================
``replica``            string   its name
``host``               string   where it ran
``parent``             string   its parent's name (null for an origin)
``generation``         int64    origins are 0
``born``               double   its agent started
``live_at``            double   it first answered its health probe (null: never live)
``died``               double   it died (null: running at the end)
``cause``              string   why it died (null: running at the end)
``live``               bool     it was ever live (the paper's success criterion)
``separate``           bool     its own processes, not in its parent's process group
``survived_parent``    bool     it was running when its parent died
``signalled_at``       double   a signal first reached it (null: never)
``agent``              string   its agent's kind
=====================  =======  ===========================================================

The file's key-value metadata ``replisim`` holds ``{"lineage": 1, "graph": {...}}``, the
graph's attributes (``end_s``, ``scenario``, ``seed``). ``replisim graph`` writes GraphML,
GEXF, DOT or node-link JSON from it on demand.

``live.parquet`` (schema version 1), the live population: one row per change, in order,
starting with ``(0.0, 0)``; the count holds from its time to the next row's:

==========  =======  ==========================================================
column      type     what
==========  =======  ==========================================================
``t``       double   when it changed (simulated seconds)
``live``    int64    replicas live from then on
==========  =======  ==========================================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sim.eventlog import EventLog, Shape
from sim.lineage import LineageTable, check_lineage_data, read_lineage_json

if TYPE_CHECKING:
    import networkx as nx
    import pandas as pd

__all__ = [
    "EVENTS",
    "EVENT_COLUMNS",
    "LINEAGE",
    "LINEAGE_COLUMNS",
    "LIVE",
    "event_groups",
    "events_table",
    "has_events",
    "has_lineage",
    "iter_events",
    "lineage_data",
    "lineage_path",
    "live_path",
    "read_events",
    "read_lineage",
    "read_lineage_table",
    "read_live",
    "write_events",
    "write_lineage",
    "write_live",
]

EVENTS = "events.parquet"
LINEAGE = "lineage.parquet"
LIVE = "live.parquet"
OLD_EVENTS = "events.jsonl"
OLD_LINEAGE = "lineage.json"
SCHEMA_KEY = b"replisim"

#: The typed columns of ``events.parquet`` after ``t`` and ``event``, in order.
EVENT_COLUMNS: dict[str, pa.DataType] = {
    "replica": pa.string(),
    "host": pa.string(),
    "src": pa.string(),
    "dst": pa.string(),
    "path": pa.string(),
    "parent": pa.string(),
    "generation": pa.int64(),
    "port": pa.int64(),
    "bytes": pa.float64(),
    "ready_at": pa.float64(),
    "signal": pa.string(),
    "grace": pa.float64(),
    "source": pa.string(),
    "cause": pa.string(),
    "reason": pa.string(),
}

EVENTS_SCHEMA = pa.schema(
    [
        pa.field("t", pa.float64()),
        pa.field("event", pa.dictionary(pa.int32(), pa.string())),
        *(pa.field(name, kind) for name, kind in EVENT_COLUMNS.items()),
        pa.field("data", pa.string()),
    ],
    metadata={SCHEMA_KEY: json.dumps({"events": 1}).encode()},
)

#: The columns of ``lineage.parquet``.
LINEAGE_COLUMNS: dict[str, pa.DataType] = {
    "replica": pa.string(),
    "host": pa.string(),
    "parent": pa.string(),
    "generation": pa.int64(),
    "born": pa.float64(),
    "live_at": pa.float64(),
    "died": pa.float64(),
    "cause": pa.string(),
    "live": pa.bool_(),
    "separate": pa.bool_(),
    "survived_parent": pa.bool_(),
    "signalled_at": pa.float64(),
    "agent": pa.string(),
}

# Which Python types each typed column takes as it is (anything else goes to ``data``).
_ACCEPTS: dict[pa.DataType, tuple[type, ...]] = {
    pa.string(): (str,),
    pa.int64(): (int,),
    pa.float64(): (float, int),
}


def _strict(value: Any) -> Any:
    """``value`` with NaN and infinities as None, recursively (strict JSON)."""
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def _typed(values: list[Any], kind: pa.DataType) -> tuple[pa.Array, list[int]]:
    """``values`` as a column of ``kind``, and the rows whose value does not go there
    (None, or another type: those go to ``data``)."""
    accepts = _ACCEPTS[kind]
    if kind == pa.string():  # inference finds any value that is not a str
        try:
            column = pa.array(values)
        except (pa.ArrowException, OverflowError):
            column = None
        if column is not None and column.type in (pa.string(), pa.null()):
            column = column.cast(kind)
            if column.null_count:
                nulls = column.is_null().to_numpy(zero_copy_only=False)
                return column, np.flatnonzero(nulls).tolist()
            return column, []
        types: set[type] = set()
    else:  # inference would take a bool for a number: check the types (a C-level pass)
        types = set(map(type, values))
    if types and types <= {*accepts, type(None)}:
        # Inferred, then cast: pa.array(..., type=pa.string()) takes a slower path (25x).
        column = pa.array(values)
        if column.type != kind:
            column = column.cast(kind)
        if column.null_count:
            return column, np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)).tolist()
        return column, []
    kept = [v if type(v) in accepts else None for v in values]
    aside = [i for i, v in enumerate(values) if type(v) not in accepts]
    return pa.array(kept, type=kind), aside


#: Events per row group of ``events.parquet``: the conversion works a group at a time, so
#: writing 10^7 events holds one group's columns in memory, not the whole table.
ROW_GROUP = 1 << 20


def events_table(log: EventLog) -> pa.Table:
    """The events of ``log`` as a table of :data:`EVENTS_SCHEMA` (see :func:`event_groups`)."""
    groups = list(event_groups(log))
    return pa.concat_tables(groups) if groups else EVENTS_SCHEMA.empty_table()


def event_groups(log: EventLog, rows: int = ROW_GROUP) -> Iterator[pa.Table]:
    """The events of ``log`` as tables of :data:`EVENTS_SCHEMA`, ``rows`` events each.

    Each shape of the log (a kind with its field names) is converted column by column, so
    the cost per event is pyarrow's, not Python's, except for fields that go to ``data``;
    then each column that some shape has is put in the order the events happened (one
    ``take`` over its shapes' pieces), and a column that no shape has is all null.
    """
    n = len(log)
    if not n:
        return
    times = np.frombuffer(log.times(), dtype=np.float64)
    shape_of = np.frombuffer(log.shape_numbers(), dtype=np.uint32)
    shapes = log.shapes()
    kinds: list[str] = []
    kind_index: dict[str, int] = {}
    kind_of_shape = np.zeros(len(shapes), dtype=np.int32)
    positions: dict[int, np.ndarray] = {}
    for shape in shapes:
        where = np.flatnonzero(shape_of == shape.number)
        if where.size:
            positions[shape.number] = where
            if shape.kind not in kind_index:
                kind_index[shape.kind] = len(kinds)
                kinds.append(shape.kind)
            kind_of_shape[shape.number] = kind_index[shape.kind]
    dictionary = pa.array(kinds, type=pa.string())
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        pieces: dict[str, list[tuple[pa.Array, np.ndarray]]] = {}
        for shape in shapes:
            if shape.number not in positions:
                continue
            at = positions[shape.number]
            lo, hi = np.searchsorted(at, (start, stop))
            if lo < hi:
                rows_at = at[lo:hi] - start
                for name, column in _shape_columns(shape, int(lo), int(hi)).items():
                    pieces.setdefault(name, []).append((column, rows_at))
        event = pa.DictionaryArray.from_arrays(
            pa.array(kind_of_shape[shape_of[start:stop]], type=pa.int32()), dictionary
        )
        columns = [pa.array(times[start:stop]), event]
        for field in list(EVENTS_SCHEMA)[2:]:
            parts = pieces.get(field.name)
            columns.append(
                _in_order(parts, stop - start) if parts else pa.nulls(stop - start, field.type)
            )
        yield pa.Table.from_arrays(columns, schema=EVENTS_SCHEMA)


def _in_order(parts: list[tuple[pa.Array, np.ndarray]], rows: int) -> pa.Array:
    """One column of ``rows`` events from its shapes' pieces, each with the rows of its
    values (null where no piece has a row)."""
    if len(parts) == 1 and len(parts[0][0]) == rows:
        return parts[0][0]  # one shape has every row, in order
    index = np.full(rows, -1, dtype=np.int64)
    offset = 0
    for column, rows_at in parts:
        index[rows_at] = np.arange(offset, offset + len(column))
        offset += len(column)
    values = pa.concat_arrays([column for column, _ in parts])
    missing = index < 0
    return values.take(pa.array(index, mask=missing if missing.any() else None))


def _shape_columns(shape: Shape, lo: int, hi: int) -> dict[str, pa.Array]:
    """Events ``lo`` to ``hi`` of one shape: its typed columns, and ``data`` if any of its
    fields go there."""
    rows = hi - lo
    width = len(shape.names)
    columns: dict[str, pa.Array] = {}
    extras: dict[int, dict[str, Any]] = {}
    for j, name in enumerate(shape.names):
        values = shape.values[lo * width + j : hi * width : width]
        kind = EVENT_COLUMNS.get(name)
        aside: list[int] | range
        if kind is not None:
            columns[name], aside = _typed(values, kind)
        else:
            aside = range(rows)
        for i in aside:
            extras.setdefault(i, {})[name] = values[i]
    if extras:
        columns["data"] = pa.array(_json_cells(extras, rows), type=pa.string())
    return columns


def _json_cells(extras: dict[int, dict[str, Any]], rows: int) -> list[str | None]:
    """``data``: per row, its fields set aside as a JSON object (None for a row without).

    Rows with the same scalar fields (an origin's ``parent: null`` on 10^5 starts) share
    one string, encoded once."""
    cells: list[str | None] = [None] * rows
    seen: dict[tuple[Any, ...], str] = {}
    for row, fields in extras.items():
        key: tuple[Any, ...] | None = None
        if all(type(v) in _SCALARS for v in fields.values()):
            key = tuple((k, type(v), v) for k, v in fields.items())
            text = seen.get(key)
            if text is not None:
                cells[row] = text
                continue
        text = json.dumps(_strict(fields), ensure_ascii=False)
        if key is not None:
            seen[key] = text
        cells[row] = text
    return cells


# Not floats: 0.0 and -0.0 are equal keys but different JSON.
_SCALARS = frozenset((str, int, bool, type(None)))


#: How ``events.parquet`` is written. Dictionary pages only for ``event`` (the other
#: strings are mostly distinct names: pyarrow tries a dictionary, then falls back to plain)
#: and statistics only for the numbers: measured at 10^5 replicas (8 * 10^5 events), the
#: write takes about two thirds of the time of pyarrow's defaults and the file is smaller.
EVENTS_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "use_dictionary": ["event"],
    "write_statistics": ["t", "event", "generation", "port", "bytes", "ready_at", "grace"],
}


def write_events(log: EventLog, path: str | Path) -> None:
    """Write ``events.parquet`` (see the module's docstring for the schema), a row group of
    :data:`ROW_GROUP` events at a time."""
    with pq.ParquetWriter(str(path), EVENTS_SCHEMA, **EVENTS_WRITE_OPTIONS) as writer:
        for group in event_groups(log):
            writer.write_table(group)


def has_events(folder: str | Path) -> bool:
    """Whether a trial folder holds its events (Parquet, or an older folder's JSONL)."""
    folder = Path(folder)
    return (folder / EVENTS).is_file() or (folder / OLD_EVENTS).is_file()


def read_events(folder: str | Path) -> pd.DataFrame:
    """A trial folder's events as a DataFrame with the columns of ``events.parquet``.

    An older folder's ``events.jsonl`` is converted to the same columns.

    Raises:
        FileNotFoundError: the folder holds no events.
    """
    import pandas as pd

    folder = Path(folder)
    if (folder / EVENTS).is_file():
        return pd.read_parquet(folder / EVENTS)
    log = EventLog()
    for record in _jsonl(folder / OLD_EVENTS):
        t = record.pop("t", math.nan)
        kind = record.pop("event", "")
        log.add(math.nan if t is None else float(t), str(kind), record)
    return events_table(log).to_pandas()


def iter_events(folder: str | Path) -> Iterator[dict[str, Any]]:
    """A trial folder's events as ``{"t": ..., "event": ..., **fields}``, in order: the
    records ``events.jsonl`` held, from either file.

    Raises:
        FileNotFoundError: the folder holds no events.
        ValueError: the file is damaged.
    """
    folder = Path(folder)
    if not (folder / EVENTS).is_file():
        yield from _jsonl(folder / OLD_EVENTS)
        return
    try:
        parquet = pq.ParquetFile(folder / EVENTS)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{folder / EVENTS} is not a Parquet file: {err}") from None
    typed = list(EVENT_COLUMNS)
    for batch in parquet.iter_batches():
        for row in batch.to_pylist():
            record = {"t": row["t"], "event": row["event"]}
            record.update((k, row[k]) for k in typed if row[k] is not None)
            if row["data"] is not None:
                record.update(json.loads(row["data"]))
            yield record


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                raise ValueError(f"{path}:{number}: not a JSON line") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: not a JSON object")
            yield record


# ------------------------------------------------------------------ lineage
def write_lineage(table: LineageTable, path: str | Path) -> None:
    """Write ``lineage.parquet`` (see the module's docstring for the schema)."""
    running = np.isnan(table.died)
    parents = table.parent_names()
    columns = {
        "replica": pa.array(table.name, type=pa.string()),
        "host": pa.array(table.host, type=pa.string()),
        "parent": pa.array([p or None for p in parents], type=pa.string()),
        "generation": pa.array(table.generation, type=pa.int64()),
        "born": pa.array(table.born, type=pa.float64(), from_pandas=True),
        "live_at": pa.array(table.live_at, type=pa.float64(), from_pandas=True),
        "died": pa.array(table.died, type=pa.float64(), from_pandas=True),
        "cause": pa.array(table.cause, type=pa.string(), mask=running),
        "live": pa.array(table.live, type=pa.bool_()),
        "separate": pa.array(table.separate, type=pa.bool_()),
        "survived_parent": pa.array(table.survived_parent, type=pa.bool_()),
        "signalled_at": pa.array(table.signalled_at, type=pa.float64(), from_pandas=True),
        "agent": pa.array(table.agent, type=pa.string()),
    }
    meta = {"lineage": 1, "graph": _strict(table.attrs)}
    schema = pa.schema(
        [pa.field(k, v) for k, v in LINEAGE_COLUMNS.items()],
        metadata={SCHEMA_KEY: json.dumps(meta, sort_keys=True, default=str).encode()},
    )
    pq.write_table(pa.table(columns, schema=schema), str(path), compression="zstd")


def has_lineage(folder: str | Path) -> bool:
    """Whether a trial folder holds its lineage (Parquet, or an older folder's JSON)."""
    folder = Path(folder)
    return (folder / LINEAGE).is_file() or (folder / OLD_LINEAGE).is_file()


def lineage_path(folder: str | Path) -> Path:
    """The lineage file of a trial folder: ``lineage.parquet``, else ``lineage.json``."""
    folder = Path(folder)
    return folder / LINEAGE if (folder / LINEAGE).is_file() else folder / OLD_LINEAGE


def read_lineage_table(folder: str | Path) -> LineageTable:
    """A trial folder's lineage as a table (from either file).

    Raises:
        FileNotFoundError: the folder holds no lineage.
        ValueError: the file is damaged or not a lineage.
    """
    path = lineage_path(folder)
    if path.suffix == ".json":
        return _table_of_graph(read_lineage_json(path))
    try:
        read = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise ValueError(f"{path} is not a Parquet file: {err}") from None
    missing = [c for c in LINEAGE_COLUMNS if c not in read.column_names]
    if missing:
        raise ValueError(f"{path} is not a lineage written by replisim: no {missing[0]!r}")
    meta: dict[str, Any] = {}
    raw = (read.schema.metadata or {}).get(SCHEMA_KEY)
    if raw:
        try:
            meta = json.loads(raw)
        except ValueError:
            meta = {}
    graph: dict[str, Any] = meta["graph"] if isinstance(meta.get("graph"), dict) else {}
    names = read.column("replica").to_pylist()
    if any(not isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{path}: replica names must be distinct strings")
    row = {name: i for i, name in enumerate(names)}
    parent_names = read.column("parent").to_pylist()
    try:
        parents = np.array([-1 if p is None else row[p] for p in parent_names], dtype=np.int64)
    except KeyError as err:
        raise ValueError(f"{path}: parent {err.args[0]!r} is not one of its replicas") from None

    def floats(name: str) -> np.ndarray:
        return read.column(name).to_numpy(zero_copy_only=False).astype(np.float64)

    def flags(name: str) -> np.ndarray:
        return read.column(name).fill_null(False).to_numpy(zero_copy_only=False).astype(bool)

    end = graph.get("end_s")
    attrs = {**graph, "end_s": math.nan if end is None else end}
    return LineageTable(
        name=names,
        host=[h or "" for h in read.column("host").to_pylist()],
        parent=parents,
        generation=read.column("generation").fill_null(0).to_numpy().astype(np.int64),
        born=floats("born"),
        live_at=floats("live_at"),
        died=floats("died"),
        cause=[c or "" for c in read.column("cause").to_pylist()],
        live=flags("live"),
        separate=flags("separate"),
        survived_parent=flags("survived_parent"),
        signalled_at=floats("signalled_at"),
        agent=[a or "" for a in read.column("agent").to_pylist()],
        attrs=attrs,
    )


def read_lineage(folder: str | Path) -> nx.DiGraph:
    """A trial folder's lineage graph (from either file; see :mod:`sim.lineage`)."""
    path = lineage_path(folder)
    if path.suffix == ".json":
        return read_lineage_json(path)
    return read_lineage_table(folder).graph()


def lineage_data(folder: str | Path) -> dict[str, Any]:
    """A trial folder's lineage as node-link data (``lineage.json``'s shape: ``nodes`` with
    ``id`` and the attributes, NaN as None; ``edges`` with ``source`` and ``target``)."""
    path = lineage_path(folder)
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        return check_lineage_data(data, path)
    table = read_lineage_table(folder)
    parents = table.parent_names()

    def nan_none(values: np.ndarray) -> list[float | None]:
        return [None if v != v else v for v in values.tolist()]

    nodes = [
        {
            "id": name,
            "host": host,
            "parent": parent,
            "generation": gen,
            "born": born,
            "live_at": live_at,
            "died": died,
            "cause": cause,
            "live": live,
            "separate": separate,
            "survived_parent": survived,
            "signalled_at": signalled,
            "agent": agent,
        }
        for name, host, parent, gen, born, live_at, died, cause, live, separate, survived, signalled, agent in zip(  # noqa: E501
            table.name,
            table.host,
            parents,
            table.generation.tolist(),
            nan_none(table.born),
            nan_none(table.live_at),
            nan_none(table.died),
            table.cause,
            table.live.tolist(),
            table.separate.tolist(),
            table.survived_parent.tolist(),
            nan_none(table.signalled_at),
            table.agent,
            strict=True,
        )
    ]
    edges = [{"source": p, "target": n} for n, p in zip(table.name, parents, strict=True) if p]
    graph = {k: (None if isinstance(v, float) and v != v else v) for k, v in table.attrs.items()}
    return {"directed": True, "multigraph": False, "graph": graph, "nodes": nodes, "edges": edges}


def _table_of_graph(g: nx.DiGraph) -> LineageTable:
    """The table of a lineage graph read from an older folder's ``lineage.json``."""
    names = list(g.nodes)
    row = {n: i for i, n in enumerate(names)}
    data = [g.nodes[n] for n in names]

    def floats(key: str) -> np.ndarray:
        return np.array(
            [math.nan if d.get(key) is None else float(d[key]) for d in data], dtype=np.float64
        )

    def flags(key: str) -> np.ndarray:
        return np.array([bool(d.get(key, False)) for d in data], dtype=bool)

    parents = []
    for n, d in zip(names, data, strict=True):
        preds = list(g.predecessors(n))
        parent = preds[0] if preds else d.get("parent") or None
        parents.append(row.get(parent, -1) if parent is not None else -1)
    return LineageTable(
        name=[str(n) for n in names],
        host=[str(d.get("host", "")) for d in data],
        parent=np.array(parents, dtype=np.int64),
        generation=np.array([int(d.get("generation") or 0) for d in data], dtype=np.int64),
        born=floats("born"),
        live_at=floats("live_at"),
        died=floats("died"),
        cause=[str(d.get("cause") or "") for d in data],
        live=flags("live"),
        separate=flags("separate"),
        survived_parent=flags("survived_parent"),
        signalled_at=floats("signalled_at"),
        agent=[str(d.get("agent") or "") for d in data],
        attrs=dict(g.graph),
    )


# ------------------------------------------------------------------ live population
LIVE_SCHEMA = pa.schema(
    [pa.field("t", pa.float64()), pa.field("live", pa.int64())],
    metadata={SCHEMA_KEY: json.dumps({"live": 1}).encode()},
)


def write_live(series: list[tuple[float, int]], path: str | Path) -> None:
    """Write ``live.parquet`` (see the module's docstring) from ``(time, live)`` pairs.

    10^5 replicas change the count 2 * 10^5 times: as JSON in ``summary.json`` that was
    5.6 MB of text and a quarter of a second; as two columns, a few milliseconds."""
    pairs = np.fromiter(series, dtype=[("t", np.float64), ("live", np.int64)], count=len(series))
    table = pa.Table.from_arrays(
        [pa.array(pairs["t"]), pa.array(pairs["live"])], schema=LIVE_SCHEMA
    )
    pq.write_table(table, str(path), compression="zstd")


def live_path(folder: str | Path) -> Path:
    """The file holding a trial folder's population curve: ``live.parquet``, else (an
    older folder) ``summary.json``."""
    folder = Path(folder)
    return folder / LIVE if (folder / LIVE).is_file() else folder / "summary.json"


def read_live(folder: str | Path) -> list[tuple[float, float]]:
    """A trial folder's population curve as ``(time, live)`` pairs (from ``live.parquet``,
    or an older folder's ``live_series`` in ``summary.json``; empty if it has neither).

    Raises:
        ValueError: the file is damaged.
    """
    path = live_path(folder)
    if path.name == LIVE:
        try:
            read = pq.read_table(path)
            times = read.column("t").to_numpy(zero_copy_only=False).astype(np.float64)
            counts = read.column("live").to_numpy(zero_copy_only=False).astype(np.float64)
        except (pa.ArrowException, OSError, KeyError) as err:
            raise ValueError(
                f"{path} is not a population curve written by replisim: {err}"
            ) from None
        return list(zip(times.tolist(), counts.tolist(), strict=True))
    if not path.is_file():
        return []
    try:
        summary = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(summary, dict):
        raise ValueError(f"{path} is not a trial summary: expected a JSON object")
    series = summary.get("live_series") or []
    try:
        return [(float(t), float(n)) for t, n in series]
    except (TypeError, ValueError):
        raise ValueError(f"{path}: live_series is not a list of [time, count] pairs") from None
