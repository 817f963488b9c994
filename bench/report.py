"""results.md, the README's benchmark section (between markers) and its fragment file, from one
run's results: nothing here is a figure the run did not measure."""

from __future__ import annotations

import math
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from bench.ingest import IngestResult
from bench.stats import Figure, ratio

# What the system promises on this 2-core machine (the README's targets section).
# Ingest at one reading per message: the pipeline keeps 70% of the lower of its two servers'
# ceilings (what Mosquitto delivers, what InfluxDB stores), i.e. the bridge costs at most 30%.
TARGET_INGEST_RATIO = 0.70
# Ingest at twelve readings per message (an agent's batch): readings stored per second.
TARGET_INGEST_12 = 150_000
# A reading is queryable within a second of its PUBACK (p99) at 1,000 messages/s.
TARGET_LATENCY_P99 = 1.0
# A day's backlog from 100 ships is stored within 30 s of the bridge coming back.
TARGET_BACKLOG_S = 30.0
# A ship's day of 15-minute windows answers within 10 ms (p99, one client) ...
TARGET_QUERY_1D_P99_MS = 10.0
# ... and the service, with its cache of recent answers, serves it at least at InfluxDB's own
# rate for the same InfluxQL under load (16 clients): the service saves cost instead of adding it.
TARGET_QUERY_RATE_RATIO = 1.0
# The fleet's 30 daily totals over 100 ships answer within 100 ms (p50, one client).
TARGET_FLEET_30D_MS = 100.0
# The bridge's memory stays within 20% once its in-flight bound is reached in an outage.
TARGET_MEMORY_GROWTH = 0.20
# Years of history from the coarse series: a 365-day daily series at >= 20x InfluxDB's rate
# summing the parts and p99 < 10 ms at 1 client; fleet 365-day monthly totals p50 < 50 ms; ingest
# with the coarse series kept up to date at >= 80% of the same run without them.
TARGET_DAILY_RATE_RATIO = 20.0
TARGET_DAILY_P99_MS = 10.0
TARGET_FLEET_MONTHLY_MS = 50.0
TARGET_COARSE_INGEST = 0.80
# One bridge against a bare stock-paho subscriber with the bridge's session settings
# (bench/pahosub.py; issue 11's reference: what any Python subscriber on paho pays before doing
# anything with a message): 70% of its rate at twelve readings per message, all of it at one.
TARGET_PAHO_RATIO_12 = 0.70
TARGET_PAHO_RATIO_1 = 1.0
# The same goals against the broker's own ceiling, what it delivers to a native subscriber
# (mosquitto_sub -q 1, issue 12): stricter, since it leaves out paho's cost per message too.
TARGET_BROKER_RATIO_12 = 0.70
TARGET_BROKER_RATIO_1 = 1.0
# Partitioned bridges ([bridge] workers) on this 2-core machine, which they share with the
# publishers, the broker and the database: 1.3x one bridge.
TARGET_WORKERS_RATIO = 1.3

README_START = "<!-- bench:start (written by python -m bench; do not edit by hand) -->"
README_END = "<!-- bench:end -->"


def commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True, check=False,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    head = git("rev-parse", "HEAD") or "unknown"
    dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    return f"{head[:12]}{' (with uncommitted changes)' if dirty else ''}"


def ms(f: Figure, digits: int = 1) -> str:
    return f.fmt(" ms", digits, 1000)


def ingest_table(ing: IngestResult) -> list[str]:
    out = ["| case | pipeline, readings/s | broker ceiling (mosquitto_sub -q 1) | bare paho "
           "subscriber | bridge, no database | bridge, no database nor normalization | InfluxDB "
           "ceiling, readings/s (points/s) | points per write | pipeline / lower server ceiling |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in ing.cases:
        r = ing.readings[c.name]
        lower = Figure([min(x, y) for x, y in zip(r["broker"].values, r["influx"].values,
                                                   strict=False)])
        paho = r.get("paho", Figure())
        out.append(
            f"| {c.name} | {r['pipeline'].fmt()} | {r['broker'].fmt()} | {paho.fmt()} | "
            f"{r['null'].fmt()} | {r['raw'].fmt()} | "
            f"{_influx_cell(r['influx'], ing.points[c.name]['influx'])}"
            + f" | {_known(ing.batch_points[c.name]).fmt()} | "
            f"{ratio(r['pipeline'], lower).fmt('', 2) if lower.values else ''} |")
    return out


def _influx_cell(readings: Figure, points: Figure) -> str:
    """Readings/s, and points/s in brackets only when they differ (one point per reading, as
    at a 15-minute boundary, would print the same figure twice)."""
    text = readings.fmt()
    if points.values and points.fmt() != text:
        text += f" ({points.fmt()} points/s)"
    return text


def _known(f: Figure) -> Figure:
    """The figure without its NaN samples (a row whose bridges publish no batch-size metric)."""
    return Figure([v for v in f.values if not math.isnan(v)])


def below(ing: IngestResult) -> list[str]:
    """Every ceiling that came out under the pipeline in this run, said plainly."""
    names = {"broker": "the broker ceiling", "paho": "the bare paho subscriber",
             "null": "the bridge without the database",
             "raw": "the bridge without database nor normalization", "influx": "the InfluxDB ceiling"}
    out = []
    for c in ing.cases:
        r = ing.readings[c.name]
        for row, name in names.items():
            if row in r and r[row].values and r[row].median < r["pipeline"].median:
                out.append(f"- {c.name}: {name} ({r[row].median:,.0f} readings/s) is below the "
                           f"pipeline ({r['pipeline'].median:,.0f}), so it is no ceiling: that run "
                           "was limited by something else sharing the two cores (the CPU shares "
                           "below say what runs beside it); read it as a floor of the stage.")
    return ["All ceilings are above the pipeline in this run."] if not out else [
        "Ceilings below the pipeline in this run:", "", *out]


def targets(r: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    rows: list[tuple[str, float, float, bool]] = []
    ing: IngestResult | None = r.get("ingest")
    if ing is not None:
        by = {c.readings: c.name for c in reversed(ing.cases) if c.ceilings}
        if 1 in by:
            x = ing.readings[by[1]]
            lower = Figure([min(a, b) for a, b in zip(x["broker"].values, x["influx"].values,
                                                       strict=False)])
            rows.append(("ingest, 1 reading/msg: pipeline / lower server ceiling",
                         ratio(x["pipeline"], lower).median, TARGET_INGEST_RATIO, True))
        for c in ing.cases:
            if c.readings == 12 and not c.offset_s:
                rows.append((f"ingest, {c.name}, readings/s",  # noqa: PERF401
                             ing.readings[c.name]["pipeline"].median, TARGET_INGEST_12, True))
        # Issue 11's targets: against the bare paho subscriber of the same run.
        for n, goal in ((1, TARGET_PAHO_RATIO_1), (12, TARGET_PAHO_RATIO_12)):
            if n in by and ing.readings[by[n]].get("paho", Figure()).values:
                x = ing.readings[by[n]]
                rows.append((f"ingest, {n} reading(s)/msg, one bridge: pipeline / bare paho "
                             "subscriber", ratio(x["pipeline"], x["paho"]).median, goal, True))
        # The same goals against the broker's ceiling (a native subscriber, issue 12).
        for n, goal in ((1, TARGET_BROKER_RATIO_1), (12, TARGET_BROKER_RATIO_12)):
            if n in by and ing.readings[by[n]]["broker"].values:
                x = ing.readings[by[n]]
                rows.append((f"ingest, {n} reading(s)/msg, one bridge: pipeline / native "
                             "subscriber (broker ceiling)", ratio(x["pipeline"], x["broker"]).median,
                             goal, True))
        one = ing.readings.get("12 readings/msg")
        for c in ing.cases:
            if one is not None and "[bridge] workers" in c.name:
                rows.append((f"ingest, {c.name} / one bridge",  # noqa: PERF401
                             ratio(ing.readings[c.name]["pipeline"], one["pipeline"]).median,
                             TARGET_WORKERS_RATIO, True))
    if "latency" in r:
        rows.append(("latency p99 (PUBACK to queryable), ms", r["latency"].p99.median * 1000,
                     TARGET_LATENCY_P99 * 1000, False))
    if "backlog" in r:
        for way, f in r["backlog"].stored.items():
            rows.append((f"24-hour backlog, {way}, s", f.median, TARGET_BACKLOG_S, False))
    q = r.get("queries", {})
    one = q.get("ship 1-day 15m")
    if one is not None:
        rows.append(("ship 1-day series p99 (1 client), ms", one.p99["http/1"].median * 1000,
                     TARGET_QUERY_1D_P99_MS, False))
        rows.append(("ship 1-day series, service / InfluxDB rate (16 clients)",
                     ratio(one.rps["http/16"], one.rps["influx/16"]).median,
                     TARGET_QUERY_RATE_RATIO, True))
    fleet = next((v for k, v in q.items() if k.startswith("fleet")), None)
    if fleet is not None:
        rows.append(("fleet 30-day totals p50 (1 client), ms", fleet.p50["http/1"].median * 1000,
                     TARGET_FLEET_30D_MS, False))
    daily = q.get("ship 365-day daily, Europe/Oslo")
    if daily is not None:
        rows.append(("ship 365-day daily series p99 (1 client), ms",
                     daily.p99["http/1"].median * 1000, TARGET_DAILY_P99_MS, False))
        rows.append(("ship 365-day daily series, one service process / InfluxDB rate (16 clients)",
                     ratio(daily.rps["http/16"], daily.rps["influx/16"]).median,
                     TARGET_DAILY_RATE_RATIO, True))
    monthly = next((v for k, v in q.items() if k.startswith("fleet 365-day monthly")), None)
    if monthly is not None:
        rows.append(("fleet 365-day monthly totals p50 (1 client), ms",
                     monthly.p50["http/1"].median * 1000, TARGET_FLEET_MONTHLY_MS, False))
    if ing is not None and {"12 readings/msg", "12 readings/msg, coarse series off"} <= set(
            ing.readings):
        rows.append(("ingest, 12 readings/msg: coarse series on / off",
                     ratio(ing.readings["12 readings/msg"]["pipeline"],
                           ing.readings["12 readings/msg, coarse series off"]["pipeline"]).median,
                     TARGET_COARSE_INGEST, True))
    if "memory" in r:
        rows.append(("bridge RSS growth after its in-flight bound, %",
                     memory_growth(r["memory"]) * 100, TARGET_MEMORY_GROWTH * 100, False))
    return rows


def targets_table(r: dict[str, Any]) -> list[str]:
    out = ["| target | measured | goal | verdict |", "| --- | --- | --- | --- |"]
    for what, value, goal, higher in targets(r):
        if math.isnan(value):
            verdict = "not measured"
        elif value >= goal if higher else value <= goal:
            verdict = "met"
        else:
            verdict = f"missed by {abs(value / goal - 1) * 100:.0f}%"
        out.append(f"| {what} | {value:,.2f} | {'>=' if higher else '<='} {goal:,.2f} | "
                   f"{verdict} |")
    return out


def memory_growth(m: Any) -> float:
    settled = m.during(10.0)
    if not settled or not settled[0].bridge_kib:
        return float("nan")
    return float(max(s.bridge_kib for s in settled) / settled[0].bridge_kib - 1)


def results_md(r: dict[str, Any]) -> str:
    out = ["# Benchmark results", "",
           f"Commit measured: `{r['commit']}`. Reproduce with `make bench` (`python -m bench "
           f"--runs {r['runs']}{' --quick' if r['quick'] else ''}`); this run took "
           f"{r['duration']:.0f} s on {os.cpu_count()} cores. Figures: median (min..max) over "
           f"{r['runs']} runs; the ceilings ran interleaved with the pipeline, same publishers, "
           "same messages, same stop rule (the exact number of points the messages make). "
           "Unpaced runs publish through `bench/leanpub.py` (a few µs of CPU a message, so the "
           "simulated ships take little from the measured processes); the stop rule counts in "
           "InfluxDB once the `energy` topic has announced every second of the run's "
           "readings.", ""]
    if r["quick"]:
        out += ["**Quick run (small counts): these figures check the code, they measure nothing.**",
                ""]
    if "ingest" in r:
        out += ["## Ingest (QoS 1, 100 ships, until every point is stored and queryable)", "",
                *ingest_table(r["ingest"]), "",
                "The two 'bridge, no database' columns are the bridge's own process and session "
                "(manual acks, same batching) writing nothing, with and without normalization; "
                "the InfluxDB ceiling writes the bridge's line protocol for the same messages in "
                "the bridge's measured batch size over one keep-alive connection. Two references "
                "for one bridge: the broker ceiling (mosquitto_sub, a native C subscriber: what "
                "Mosquitto delivers to one client, the ceiling of any subscriber) and the bare "
                "paho subscriber (stock paho in its own process, the bridge's session settings: "
                "persistent session, QoS 1, manual acks, the same Receive Maximum; it only "
                "acknowledges). The targets' 'pipeline / bare paho subscriber' rows measure the "
                "bridge's own work against the second (issue 11's reference), the 'native "
                "subscriber' rows against the first. mosquitto_sub used "
                + ", ".join(f"{k}: {f.fmt('', 2)}" for k, f in r["ingest"].sub_cpu.items()
                            if f.values) + " of a core; the paho subscriber "
                + ", ".join(f"{k}: {f.fmt('', 2)}" for k, f in r["ingest"].paho_cpu.items()
                            if f.values) + ".", "", *below(r["ingest"]), ""]
    if "latency" in r:
        lat = r["latency"]
        out += [f"## Latency (PUBACK to queryable; 100 ships at {lat.rate:,.0f} messages/s in "
                "all, each ship every 100 ms, staggered)", "",
                "| p50 | p99 | never seen queryable | sent, messages/s | publisher late, p99 |",
                "| --- | --- | --- | --- | --- |",
                f"| {ms(lat.p50, 0)} | {ms(lat.p99, 0)} | {lat.unseen} | {lat.achieved.fmt()} | "
                f"{ms(lat.send_lag_p99)} |", ""]
    if "backlog" in r:
        bl = r["backlog"]
        out += ["## Backlog (the bridge stopped while 100 ships send 24 hours of 5-minute "
                "readings, 28,800, queued in its session; then started)", "",
                "| sent as | bridge start to all stored |", "| --- | --- |"]
        out += [f"| {way} | {f.fmt(' s', 2)} |" for way, f in bl.stored.items()]
        if bl.confirmed.values:
            out.append(f"| ship agent: to every agent holding its acks | "
                       f"{bl.confirmed.fmt(' s', 2)} |")
        out.append("")
    if "queries" in r:
        out += query_section(r["queries"])
    if "memory" in r:
        out += memory_section(r["memory"])
    if "profile" in r:
        out += profile_section(r["profile"])
    out += ["## Targets", "", *targets_table(r), ""]
    return "\n".join(out)


def query_section(q: dict[str, Any]) -> list[str]:
    keys = ["http/1", "influx/1", "http/16", "influx/16", "gunicorn/16"]
    names = {"http/1": "service, 1 conn", "influx/1": "InfluxDB, 1 conn",
             "http/16": "service, 16 conns", "influx/16": "InfluxDB, 16 conns",
             "gunicorn/16": "gunicorn x4, 16 conns"}
    out = ["## Queries (wrk; the same InfluxQL on both sides; every answer checked)", "",
           "| query | side | p50 | p99 | req/s | requests | wrk CPU (of a core) |",
           "| --- | --- | --- | --- | --- | --- | --- |"]
    for name, row in q.items():
        for k in keys:
            if k in row.p50:
                out.append(f"| {name} | {names[k]} | {ms(row.p50[k])} | {ms(row.p99[k])} | "  # noqa: PERF401
                           f"{row.rps[k].fmt()} | {row.requests.get(k, 0):,} | "
                           f"{row.wrk_cpu[k].fmt('', 2)} |")
    return [*out, ""]


def memory_section(m: Any) -> list[str]:
    during = m.during()
    if not during:
        return ["## Memory", "", "No samples were taken.", ""]
    settled = m.during(10.0)
    mib = 1024.0
    return [
        f"## Memory (fresh bridge, 2,000 messages/s, InfluxDB frozen {m.outage_s:.0f} s, "
        f"sampled at 10 Hz: {len(m.samples)} samples)", "",
        "| | bridge RSS | Mosquitto RSS | held by the broker for the bridge |",
        "| --- | --- | --- | --- |",
        f"| baseline before the outage | {m.baseline_kib / mib:.1f} MiB | | |",
        f"| outage start | {during[0].bridge_kib / mib:.1f} MiB | {during[0].broker_kib / mib:.1f}"
        f" MiB | {during[0].held:,} |",
        f"| 10 s into the outage | {settled[0].bridge_kib / mib:.1f} MiB | "
        f"{settled[0].broker_kib / mib:.1f} MiB | {settled[0].held:,} |" if settled else "| | | | |",
        f"| peak during the outage | {max(s.bridge_kib for s in during) / mib:.1f} MiB | "
        f"{max(s.broker_kib for s in during) / mib:.1f} MiB | {max(s.held for s in during):,} |",
        f"| end of the outage | {during[-1].bridge_kib / mib:.1f} MiB | "
        f"{during[-1].broker_kib / mib:.1f} MiB | {during[-1].held:,} |",
        f"| after (all stored) | {m.samples[-1].bridge_kib / mib:.1f} MiB | "
        f"{m.samples[-1].broker_kib / mib:.1f} MiB | {m.samples[-1].held:,} |", ""]


def profile_section(p: Any) -> list[str]:
    out = [f"## Where the time goes (ingest, {p.case}, measured in this run)", "",
           "CPU per process over a pipeline run (1.00 = one core; the machine has "
           f"{os.cpu_count()}): " + ", ".join(f"{k} {v:.2f}" for k, v in p.cpu.items()) + ".", ""]
    if p.note:
        return [*out, p.note, ""]
    out += [f"py-spy (`py-spy record --gil --rate 200`) on the bridge during a second run: "
            f"{p.samples:,} samples of the thread holding the GIL.", "",
            "| own time (leaf frame) | share | | with callees | share |",
            "| --- | --- | --- | --- | --- |"]
    for i in range(max(len(p.leaf), len(p.inclusive))):
        a = p.leaf[i] if i < len(p.leaf) else ("", 0.0)
        c = p.inclusive[i] if i < len(p.inclusive) else ("", 0.0)
        out.append(f"| `{a[0]}` | {a[1]:.1%} | | `{c[0]}` | {c[1]:.1%} |" if a[0] else
                   f"| | | | `{c[0]}` | {c[1]:.1%} |")
    return [*out, ""]


def readme_fragment(r: dict[str, Any]) -> str:
    out = [f"Measured by `make bench` at commit `{r['commit']}` ({r['runs']} runs, "
           f"{r['duration']:.0f} s; all figures in [bench/results.md](bench/results.md)).", ""]
    if r["quick"]:
        out += ["**Quick run: not a measurement.**", ""]
    if "ingest" in r:
        out += [*ingest_table(r["ingest"]), ""]
    out += ["Targets:", "", *targets_table(r)]
    return "\n".join(out) + "\n"


def write_readme(readme: Path, fragment: str) -> bool:
    """Replace the README's section between the markers; False when the markers are missing."""
    text = readme.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(README_START) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        return False
    readme.write_text(pattern.sub(lambda _m: f"{README_START}\n{fragment}{README_END}", text),
                      encoding="utf-8")
    return True
