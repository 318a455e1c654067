"""``voicebook serve`` (one worker) under pyinstrument; writes text and HTML profiles on shutdown."""

from __future__ import annotations

import argparse
from pathlib import Path

import uvicorn
from pyinstrument import Profiler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    profiler = Profiler(interval=0.001, async_mode="disabled")
    profiler.start()
    try:
        uvicorn.run(
            "voicebook.app:create_app",
            factory=True,
            host="127.0.0.1",
            port=args.port,
            log_config=None,
            access_log=False,
        )
    finally:
        profiler.stop()
        args.out.write_text(profiler.output_text(unicode=True, show_all=False))
        args.out.with_suffix(".html").write_text(profiler.output_html())


if __name__ == "__main__":
    main()
