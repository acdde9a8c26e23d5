"""Run nox sessions side by side (the test sessions mostly wait on brokers, not on the CPU).

``python scripts/run-sessions.py --jobs 2 SESSION... [-- ARGS]``: each session's output goes to
``.nox/logs/<session>.log`` and is printed whole when the session ends; the exit status is
non-zero when any session failed.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

LOGS = Path(".nox/logs")


def run(session: str, extra: list[str]) -> tuple[str, int, float]:
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / (re.sub(r"[^\w.-]+", "_", session) + ".log")
    started = time.monotonic()
    with log.open("w") as out:
        code = subprocess.call(
            ["nox", "-s", session, *(["--", *extra] if extra else [])],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    elapsed = time.monotonic() - started
    print(f"\n===== {session}: {'ok' if code == 0 else f'FAILED ({code})'} in {elapsed:.0f}s =====")
    print(log.read_text(), flush=True)
    return session, code, elapsed


def main() -> int:
    argv = sys.argv[1:]
    extra: list[str] = []
    if "--" in argv:
        extra = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("sessions", nargs="+")
    args = parser.parse_args(argv)
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda s: run(s, extra), args.sessions))
    print("\nsummary:")
    for session, code, elapsed in results:
        print(f"  {session:32s} {'ok' if code == 0 else 'FAILED':7s} {elapsed:5.0f}s")
    return 1 if any(code for _, code, _ in results) else 0


if __name__ == "__main__":
    sys.exit(main())
