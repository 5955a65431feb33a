"""Small name -> object registries, so configs name components and no if/elif ladder grows.

    MODELS = Registry("model")

    @MODELS.register("mmn")
    class MMN(...): ...

    MODELS.get("mmn")  # -> MMN; unknown names raise RegistryError listing the known ones
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from vidlang.errors import RegistryError

T = TypeVar("T")


class Registry(Generic[T]):
    """A named table of components of one kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that records ``obj`` under ``name`` (names are unique per registry)."""

        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise RegistryError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            return obj

        return deco

    def get(self, name: str) -> T:
        """The component called ``name``; a clear error lists the known names otherwise."""
        _ensure_builtins_loaded()
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none)"
            raise RegistryError(f"unknown {self.kind} {name!r}; known: {known}") from None

    def names(self) -> list[str]:
        _ensure_builtins_loaded()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        _ensure_builtins_loaded()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {sorted(self._items)})"


MODELS: Registry[Any] = Registry("model")
DATASETS: Registry[Any] = Registry("dataset")
READERS: Registry[Any] = Registry("annotation reader")
LOSSES: Registry[Any] = Registry("loss")
TEXT_ENCODERS: Registry[Any] = Registry("text encoder")
FEATURE_STORES: Registry[Any] = Registry("feature store")
EXTRACTORS: Registry[Any] = Registry("feature extractor")
# task name ("grounding", "retrieval", "alignment") -> the engine's data pipeline for that task
PIPELINES: Registry[Any] = Registry("task pipeline")

# Modules whose import registers the built-in components. Listed here (not imported at package
# import time) so `import vidlang` stays cheap; a missing optional module is simply skipped.
_BUILTIN_MODULES = (
    "vidlang.data.readers",
    "vidlang.data.features",
    "vidlang.data.synthvl",
    "vidlang.text",
    "vidlang.losses",
    "vidlang.models",
    "vidlang.video",
    "vidlang.engine.pipelines",
)
_loaded = False


def _ensure_builtins_loaded() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib
    import importlib.util

    for mod in _BUILTIN_MODULES:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod)
