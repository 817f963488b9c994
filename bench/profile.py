"""Where the time goes during an ingest run: CPU share of each process, and a py-spy profile of
the bridge (samples of the threads holding the GIL), both measured in the run and written into
the results. Without py-spy (the ``bench`` extra) the profile is left out, never made up.
"""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench.ingest import IngestCase, pipeline
from bench.stack import Bench, cpu_seconds
from bench.stats import log


@dataclass
class Profile:
    case: str
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)   # process -> share of one core
    samples: int = 0
    leaf: list[tuple[str, float]] = field(default_factory=list)       # own time, share
    inclusive: list[tuple[str, float]] = field(default_factory=list)  # with callees, share
    note: str = ""


# Frames every sample of a thread passes through: no information in their share.
GENERIC = ("(threading.py)", "loop_forever (mqtt/client.py)", "_thread_main (mqtt/client.py)",
           "_loop (mqtt/client.py)")


def _py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


def run_profile(b: Bench, case: IngestCase, per_ship: int) -> Profile:
    prof = Profile(case.name)
    b.start_bridge("pipeline")
    assert b.bridge is not None and b.bridge.pid is not None
    pids = {"bridge": b.bridge.pid, "mosquitto": b.broker.pid or 0,
            "influxd": b.influx.pid or 0}
    before = {k: cpu_seconds(p) for k, p in pids.items()}
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    rate, _, _ = pipeline(b, case, per_ship, b.new_base())
    children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    prof.seconds = per_ship * 100 * case.readings / rate
    for k, p in pids.items():
        prof.cpu[k] = (cpu_seconds(p) - before[k]) / prof.seconds
    prof.cpu["publishers (2 processes)"] = (
        children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime
    ) / prof.seconds
    spy = _py_spy()
    if spy is None:
        prof.note = "py-spy is not installed (pip install -e '.[bench]'): no profile"
        return prof
    out = b.root / "py-spy.txt"
    proc = subprocess.Popen([spy, "record", "--pid", str(pids["bridge"]), "--gil", "--rate", "200",
                             "--format", "raw", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        pipeline(b, case, per_ship, b.new_base())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    if not out.exists():
        prof.note = f"py-spy wrote no profile: {err.decode(errors='replace')[-300:]}"
        log(prof.note)
        return prof
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    total = 0
    for row in out.read_text().splitlines():
        stack, _, count = row.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        frames = [f for f in frames if not f.startswith(("process ", "thread "))] or frames
        total += n
        own[_short(frames[-1])] += n
        for name in {_short(f) for f in frames}:
            if not name.endswith(GENERIC):
                incl[name] += n
    prof.samples = total
    if total:
        prof.leaf = [(k, v / total) for k, v in own.most_common(12)]
        prof.inclusive = [(k, v / total) for k, v in incl.most_common(16)]
    log(f"profile: {total} samples of the bridge's GIL holders")
    return prof


def _short(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(parts[-2:]) if len(parts) >= 2 else path
    return f"{name} ({short})" if where else name
