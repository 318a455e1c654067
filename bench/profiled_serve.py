"""``voicebook serve`` (one worker) under pyinstrument; writes text and HTML profiles on shutdown.

The profiler starts at the first HTTP request, so imports and start-up stay out of the profile.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvicorn
from pyinstrument import Profiler

from voicebook.app import create_app

PROFILER = Profiler(interval=0.001, async_mode="disabled")


class StartOnFirstRequest:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not PROFILER.is_running:
            PROFILER.start()
        await self.app(scope, receive, send)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    try:
        uvicorn.run(
            StartOnFirstRequest(create_app()),
            host="127.0.0.1",
            port=args.port,
            log_config=None,
            access_log=False,
        )
    finally:
        if PROFILER.is_running:
            PROFILER.stop()
        args.out.write_text(PROFILER.output_text(unicode=True, show_all=False, short_mode=False))
        all_frames = args.out.with_suffix(".all.txt")  # library frames too (FastAPI, SQLAlchemy, httpx)
        all_frames.write_text(PROFILER.output_text(unicode=True, show_all=True, short_mode=False))
        args.out.with_suffix(".html").write_text(PROFILER.output_html())


if __name__ == "__main__":
    main()
