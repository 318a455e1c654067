"""What a serving process imports first, and how: ``voicebook.app`` imports this module before anything else,
and ``voicebook serve`` before it reads its settings. It keeps a worker's memory down
(docs/BENCHMARKS.md, run 4):

* httpx and structlog import extras when they happen to be installed (here typer and the dev tools bring
  them), which voicebook never uses: httpx its command-line client (``httpx._main``: click, rich, pygments),
  structlog rich for pretty tracebacks (``structlog.dev``, ``structlog.tracebacks``). Both treat them as
  optional. voicebook's logs format exceptions with ``format_exc_info`` before any renderer sees them
  (``voicebook.logging``), so structlog's traceback formatter is never called. Hidden while the two are
  first imported, they stay out of the worker, about 4 MB resident. Whatever is imported later may still
  import rich; only ``httpx.main`` (httpx's own CLI entry point) then says its extras are missing.
* anyio's asyncio backend, which httpx's async transport imports on its first request: every worker sends
  Cal.com requests. Imported here, the first caller does not wait for it, and its import (compiling a
  large module where no bytecode cache is written) is not added on top of a started worker's memory.

Not lazy, on purpose; when something else imported httpx or structlog first (tests, tools), it is left as is.
"""

from __future__ import annotations

import contextlib
import importlib
import sys


def import_without(module: str, *optional: str) -> None:
    """Import ``module`` as if the ``optional`` modules were not installed.

    A ``None`` in ``sys.modules`` makes ``import name`` raise ``ModuleNotFoundError``, which is how an
    optional import finds out it is unavailable; the entries are removed again afterwards. Too late to
    choose when ``module`` or one of them is loaded already: then it is a plain import.
    """
    hide = module not in sys.modules and not any(name in sys.modules for name in optional)
    if hide:
        for name in optional:
            sys.modules[name] = None  # type: ignore[assignment]  # the import system's own "not available"
    try:
        importlib.import_module(module)
    finally:
        if hide:
            for name in optional:
                if sys.modules.get(name, ...) is None:
                    del sys.modules[name]


def serving_imports() -> None:
    import_without("httpx", "httpx._main")  # first: it would import rich itself
    import_without("structlog", "rich")
    with contextlib.suppress(ImportError):  # a future anyio may keep it elsewhere: its first use pays then
        importlib.import_module("anyio._backends._asyncio")


serving_imports()
