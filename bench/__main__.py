"""Run every benchmark in turn, each in its own process: ``python -m bench``.

Each prints its own table; this only sequences them and reports which failed.
Pass names to run a subset: ``python -m bench cni_bench extender``.
"""

from __future__ import annotations

import subprocess
import sys
import time

ALL = ("cloud_latency", "device_plugin", "cni_bench", "extender", "ipamd", "webhook", "footprint")


def main(argv: list[str]) -> int:
    names = argv or list(ALL)
    unknown = [n for n in names if n not in ALL]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(ALL)}")
        return 2
    failed: list[str] = []
    for name in names:
        print(f"\n===== bench.{name} =====", flush=True)
        t0 = time.monotonic()
        rc = subprocess.call([sys.executable, "-m", f"bench.{name}"])
        print(f"===== bench.{name}: exit {rc} in {time.monotonic() - t0:.1f} s =====", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
