"""``make bench`` (``python -m bench``): the pipeline's figures next to its servers' ceilings.

Starts a private stack on free loopback ports under a temporary directory, runs each measurement
``--runs`` times and writes ``bench/results.md``, ``bench/README-table.md`` and the README's
benchmark section from what it measured. Any shortfall (points not stored, messages not
acknowledged, a wrong query answer) stops the run with exit status 1 and says what was missing.
The measurements live in ``bench/ingest.py``, ``latency.py``, ``backlog.py``, ``queries.py``,
``memory.py`` and ``profile.py``; the stack in ``stack.py``; the tables in ``report.py``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.backlog import run_backlog
from bench.hotpath import carry_over
from bench.ingest import INGEST_CASES, run_ingest
from bench.latency import run_latency
from bench.memory import run_memory
from bench.profile import run_profile
from bench.queries import run_queries
from bench.scale import WORKER_CASES
from bench.stack import start
from bench.stats import ShortfallError, log

HERE = Path(__file__).resolve().parent
PARTS = ("ingest", "latency", "backlog", "queries", "memory")


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="repetitions of each measurement")
    parser.add_argument("--outage", type=float, default=60.0, help="InfluxDB outage, seconds")
    parser.add_argument("--only", choices=PARTS, action="append",
                        help="run only this measurement (repeatable); results go to "
                             "bench/results-only.md and the README is left alone")
    parser.add_argument("--quick", action="store_true",
                        help="small counts and short runs, to check the code (1 run unless "
                             "--runs is given; results go to bench/results-quick.md)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy profile")
    parser.add_argument("--out", type=Path, help="results file (default bench/results.md)")
    args = parser.parse_args()
    if args.quick and "--runs" not in sys.argv:
        args.runs = 1
    parts = args.only or list(PARTS)
    partial = bool(args.only) or args.quick
    out = args.out or HERE / ("results-quick.md" if args.quick else
                              "results-only.md" if args.only else "results.md")
    started = time.time()
    b = start(Path(tempfile.mkdtemp(prefix="fleet-bench-")))
    r: dict[str, Any] = {"runs": args.runs, "quick": args.quick, "commit": report.commit()}
    try:
        if "ingest" in parts:
            r["ingest"] = run_ingest(b, args.runs, args.quick, cases=[*INGEST_CASES, *WORKER_CASES])
            if not args.no_profile:
                case = next(c for c in INGEST_CASES if c.readings == 12)
                r["profile"] = run_profile(b, case, case.size(args.quick))
        if "latency" in parts:
            r["latency"] = run_latency(b, args.runs, args.quick)
        if "backlog" in parts:
            r["backlog"] = run_backlog(b, args.runs, args.quick)
        if "queries" in parts:
            r["queries"] = run_queries(b, 1 if args.quick else max(1, args.runs // 2), args.quick)
        if "memory" in parts:
            r["memory"] = run_memory(b, 6.0 if args.quick else args.outage)
    except ShortfallError as exc:
        log(f"FAILED: {exc}")
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        b.stop()
    r["duration"] = time.time() - started
    out.write_text(carry_over(out, report.results_md(r)), encoding="utf-8")
    log(f"wrote {out} in {r['duration']:.0f} s")
    if not partial:
        fragment = report.readme_fragment(r)
        (HERE / "README-table.md").write_text(fragment, encoding="utf-8")
        readme = HERE.parent / "README.md"
        if report.write_readme(readme, fragment):
            log(f"wrote bench/README-table.md and the benchmark section of {readme.name}")
        else:
            log(f"wrote bench/README-table.md; {readme.name} has no bench markers")
    print(out.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
