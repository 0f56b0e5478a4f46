"""Registries: the extension points of replisim.

A registry maps a name to a factory (a class or function) and, optionally, a pydantic
model for that entry's configuration. Third-party packages add entries through a Python
entry-point group; the built-in modules are imported on the first lookup, in order, until
one holds the name, and the plug-ins when no built-in does (or on listing). An unknown
name fails with an error that lists the known ones, so a typo in a scenario file is easy
to fix.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from pydantic_core import PydanticCustomError

__all__ = ["Entry", "Registry", "UnknownNameError"]

T = TypeVar("T")


class UnknownNameError(KeyError):
    """A name that no registry entry answers to."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want plain text
        return str(self.args[0])


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered item: its name, the object, and its configuration model."""

    name: str
    obj: T
    config: type[BaseModel] | None
    description: str = ""


class Registry(Generic[T]):
    """A named collection of extension points.

    Args:
        kind: What the entries are, for messages ("scripted agent", "policy").
        group: The entry-point group third-party packages register into.
        key: The field of a configuration mapping that names the entry.
        builtins: Modules holding the built-in entries, imported on first lookup so
            that importing the registry stays cheap and free of import cycles.
    """

    def __init__(self, kind: str, group: str, key: str, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.group = group
        self.key = key
        self._builtins = builtins
        self._entries: dict[str, Entry[T]] = {}
        self._builtins_loaded = 0
        self._plugins_loaded = False

    def register(
        self, name: str, config: type[BaseModel] | None = None, description: str = ""
    ) -> Callable[[T], T]:
        """Decorator that registers ``obj`` under ``name``.

        Args:
            name: The name scenario files use.
            config: The pydantic model that validates this entry's configuration.
            description: One line for ``replisim list``.
        """

        def decorate(obj: T) -> T:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = description or (getattr(obj, "__doc__", None) or "").strip().split("\n")[0]
            self._entries[name] = Entry(name, obj, config, doc)
            return obj

        return decorate

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        self._load_builtins()
        for ep in entry_points(group=self.group):
            ep.load()  # importing the module runs its @register decorators

    def _load_builtins(self, until: str | None = None) -> None:
        """Import the built-in modules in order, stopping once one has registered ``until``.

        A lookup needs only the module that holds its name: a modelled trial's ``virtual``
        host and scripted agent do not import the Docker SDK or the LLM scaffold (seconds
        of a short ``replisim run``)."""
        while self._builtins_loaded < len(self._builtins):
            if until is not None and until in self._entries:
                return
            module = self._builtins[self._builtins_loaded]
            self._builtins_loaded += 1
            importlib.import_module(module)

    def names(self) -> list[str]:
        """Return the registered names, sorted."""
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        self._load_plugins()
        return iter(self._entries[n] for n in sorted(self._entries))

    def get(self, name: str) -> Entry[T]:
        """Return the entry called ``name``.

        Raises:
            UnknownNameError: No such entry; the message lists the known names.
        """
        if name not in self._entries:
            self._load_builtins(until=name)
        if name not in self._entries:
            self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(self.names()) or "(none registered)"
            raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def validate(self, value: Any) -> BaseModel:
        """Validate a configuration mapping against the model of the entry it names.

        Used as a pydantic ``BeforeValidator``: errors raised here carry their field path.
        """
        if isinstance(value, BaseModel):
            return value
        if not isinstance(value, dict):
            raise PydanticCustomError(
                "registry_type", f"expected a mapping with a '{self.key}' field"
            )
        name = value.get(self.key)
        if not isinstance(name, str):
            known = ", ".join(self.names()) or "(none registered)"
            raise PydanticCustomError("registry_missing", f"missing '{self.key}': one of {known}")
        try:
            entry = self.get(name)
        except UnknownNameError as err:
            raise PydanticCustomError("registry_unknown", str(err)) from None
        if entry.config is None:
            raise PydanticCustomError("registry_config", f"{self.kind} {name!r} takes no config")
        return entry.config.model_validate(value)
