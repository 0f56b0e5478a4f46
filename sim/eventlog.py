"""The world's event record, kept by columns: 10^7 events in hundreds of MB, not GB.

An event is ``(time, kind, fields)``. A list of such tuples holds a tuple, a dict and
usually a float per event, about 350 bytes; a trial of 10^6 replicas records 8 * 10^6
events. :class:`EventLog` keeps the same events as columns instead: the times in an
array of doubles, and, per *shape* (a kind with its field names in order), the field
values one after the other in one flat list, so an event costs about 50 bytes and
recording it is a few C-level appends. It reads like the list it replaces: ``len``,
iteration, indexing and slicing give ``(time, kind, fields)`` tuples, rebuilt on demand.

The columns are also what the trial folder's Parquet file is written from
(:func:`shapes`), without a pass over the events in Python.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterator
from typing import Any, overload

__all__ = ["Event", "EventLog", "Shape"]

Event = tuple[float, str, dict[str, Any]]


class Shape:
    """The events of one kind with one list of field names, by columns.

    ``values`` holds the fields of every such event in order, ``len(names)`` values per
    event: field ``j`` of the shape's ``i``-th event is ``values[i * len(names) + j]``.
    ``number`` is the shape's position in the log's list of shapes.
    """

    __slots__ = ("kind", "names", "number", "values")

    def __init__(self, kind: str, names: tuple[str, ...], number: int) -> None:
        self.kind = kind
        self.names = names
        self.number = number
        self.values: list[Any] = []

    def column(self, name: str) -> list[Any]:
        """Every value of field ``name``, one per event of this shape."""
        width = len(self.names)
        return self.values[self.names.index(name) :: width]


class EventLog:
    """The events of a trial in the order they happened (see the module's docstring)."""

    __slots__ = ("_index", "_offset", "_shape", "_shapes", "_times")

    def __init__(self, events: list[Event] | None = None) -> None:
        self._times = array("d")
        self._shape = array("I")  # per event: its shape's number
        self._offset = array("I")  # per event: where its values start in its shape's list
        self._shapes: list[Shape] = []
        self._index: dict[tuple[str, ...], Shape] = {}
        for event in events or ():
            self.append(event)

    def add(self, time: float, kind: str, fields: dict[str, Any]) -> None:
        """Record one event (the hot path: a tuple key, a lookup, four C-level appends)."""
        shape = self._index.get((kind, *fields))
        if shape is None:
            shape = self._new_shape((kind, *fields))
        values = shape.values
        self._times.append(time)
        self._shape.append(shape.number)
        self._offset.append(len(values))
        values.extend(fields.values())

    def recorder(self, kind: str, names: tuple[str, ...]) -> Callable[..., None]:
        """A function ``record(time, *values)`` that records an event of ``kind`` whose fields
        ``names`` take ``values``: :meth:`add` without building a dict or finding the shape
        (for an engine that records millions of events of a few shapes)."""
        key = (kind, *names)
        shape = self._index.get(key) or self._new_shape(key)
        add_time, add_shape = self._times.append, self._shape.append
        add_offset = self._offset.append
        values = shape.values
        extend, number = values.extend, shape.number

        def record(time: float, *fields: Any) -> None:
            add_time(time)
            add_shape(number)
            add_offset(len(values))
            extend(fields)

        return record

    def append(self, event: Event) -> None:
        """Record one ``(time, kind, fields)`` event, as ``list.append`` would."""
        self.add(event[0], event[1], event[2])

    def _new_shape(self, key: tuple[str, ...]) -> Shape:
        shape = Shape(key[0], key[1:], len(self._shapes))
        self._shapes.append(shape)
        self._index[key] = shape
        return shape

    def shapes(self) -> list[Shape]:
        """The log's shapes, in the order each first occurred."""
        return list(self._shapes)

    def times(self) -> array[float]:
        """The time of every event, in order."""
        return self._times

    def shape_numbers(self) -> array[int]:
        """Per event, the position of its shape in :meth:`shapes`."""
        return self._shape

    def _event(self, i: int) -> Event:
        shape = self._shapes[self._shape[i]]
        start = self._offset[i]
        names = shape.names
        return (
            self._times[i],
            shape.kind,
            dict(zip(names, shape.values[start : start + len(names)], strict=True)),
        )

    def __len__(self) -> int:
        return len(self._times)

    def __iter__(self) -> Iterator[Event]:
        for i in range(len(self._times)):
            yield self._event(i)

    @overload
    def __getitem__(self, i: int) -> Event: ...

    @overload
    def __getitem__(self, i: slice) -> list[Event]: ...

    def __getitem__(self, i: int | slice) -> Event | list[Event]:
        if isinstance(i, slice):
            return [self._event(j) for j in range(*i.indices(len(self._times)))]
        if i < 0:
            i += len(self._times)
        if not 0 <= i < len(self._times):
            raise IndexError("event index out of range")
        return self._event(i)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, EventLog | list):
            return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<EventLog of {len(self)} events>"
