"""``python -m bench.importcost MODULE``: what importing MODULE allocates, per top-level package, as JSON.

Every loader is wrapped so that the bytes tracemalloc sees allocated while a module's body runs (its code
objects, classes, module-level tables), minus what its own nested imports allocated, are charged to that
module's top-level package. Only the standard library is imported before MODULE, so nothing of it is
already loaded (``bench.memory`` runs this in a fresh process). Python allocations only: shared
libraries and allocator slack are not in these figures, so read them as shares of the import, not as RSS.
"""

from __future__ import annotations

import importlib.abc
import json
import sys
import tracemalloc
from collections import Counter
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

own: Counter[str] = Counter()
_stack: list[list[int]] = []  # per module running: [traced bytes at its start, bytes of nested imports]


class _Measured(importlib.abc.Loader):
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self.inner.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        _stack.append([tracemalloc.get_traced_memory()[0], 0])
        try:
            self.inner.exec_module(module)
        finally:
            start, nested = _stack.pop()
            total = tracemalloc.get_traced_memory()[0] - start
            own[module.__name__.split(".")[0]] += total - nested
            if _stack:
                _stack[-1][1] += total

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> ModuleSpec | None:
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Measured(spec.loader)
                return spec  # type: ignore[no-any-return]
        return None


def main(module: str) -> None:
    tracemalloc.start(1)
    sys.meta_path.insert(0, _Finder())
    __import__(module)
    print(json.dumps(dict(own.most_common())))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "voicebook.app")
