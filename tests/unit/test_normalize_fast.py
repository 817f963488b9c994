"""The fast path of ``process_payload`` (the common payload shape in one pass) against the general
path: the same result, refusal or error for every payload, and taken for the shapes ships send."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.load import payload as bench_payload
from fleet.errors import PayloadError
from fleet.normalize import _fast_parts, process_payload
from fleet.timeutil import US, format_datetime, parse_datetime
from tests.contract_examples import RUNNING_TOTALS
from tests.unit.test_normalize import READING_REFUSED, REFUSED, WORKED

T0 = parse_datetime("2018-08-24T00:00:00Z")


def outcome(raw: bytes | str, fast: bool, **kw: Any) -> tuple[str, object]:
    """What process_payload makes of ``raw``: its result, or its error's type and fields."""
    try:
        return "ok", process_payload("s-1", raw, fast=fast, **kw)
    except PayloadError as exc:
        return "refused", (exc.reason, exc.detail, exc.batch_id)
    except ValueError as exc:
        return "error", str(exc)


def same(raw: bytes | str, **kw: Any) -> tuple[str, object]:
    fast, general = outcome(raw, True, **kw), outcome(raw, False, **kw)
    assert fast == general, raw
    assert repr(fast) == repr(general), raw  # also tells -0.0 from 0.0, which == does not
    return fast


def encode(doc: object) -> bytes:
    return json.dumps(doc).encode()  # NaN and Infinity written as json writes them


# --- the shapes ships send take the fast path ------------------------------------------------

@pytest.mark.parametrize("readings", [1, 3, 12])
@pytest.mark.parametrize("base", [1_599_999_300, 1_599_999_300 + 700])
def test_bench_and_agent_payloads_take_the_fast_path(readings: int, base: int) -> None:
    for i in range(5):
        raw = bench_payload("s-1", i, readings, base)
        doc = json.loads(raw)
        for extra in ({}, {"batch_id": f"b-{i}", "interval": 300}, {"meter": "aux-2"},
                      {"spaceship_id": "s-1", "kind": "interval"}):
            d = {**doc, **extra}
            kind, n = same(encode(d))
            assert kind == "ok"
            assert n.rejected == [] and n.accepted == readings  # type: ignore[union-attr]
            # Not vacuous: the fast path itself produced parts for it.
            units = d["units"].lower()
            power = units in ("kw", "w", "mw")
            interval = float(d["interval"]) if "interval" in d else None
            parts = _fast_parts("s-1", d["data"], power, 1.0, 1.0, interval, 900.0,
                                d.get("meter", "main"))
            assert parts == n.parts  # type: ignore[union-attr]


# --- the contract's examples and the refusals of test_normalize ------------------------------

@pytest.mark.parametrize("doc", [p.values[0] for p in WORKED])
def test_worked_examples(doc: dict[str, Any]) -> None:
    assert same(encode(doc))[0] == "ok"


def test_running_total_examples() -> None:
    for messages, _ in RUNNING_TOTALS:
        for msg in messages:
            data = [{"datetime": f"2018-08-24T{hms}Z", "value": v} for hms, v in msg]
            same(encode({"units": "kWh", "kind": "total", "data": data}))


@pytest.mark.parametrize("doc", [p.values[0] for p in REFUSED])
def test_refused_payloads(doc: object) -> None:
    raw = doc if isinstance(doc, bytes | str) else encode(doc)
    assert same(raw, max_readings=10)[0] == "refused"


@pytest.mark.parametrize("reading", [p.values[0] for p in READING_REFUSED])
def test_refused_readings(reading: object) -> None:
    ok = {"datetime": "2018-08-24T01:00:00Z", "value": 1}
    for data in ([ok, reading], [reading, ok], [reading]):
        same(encode({"units": "kW", "batch_id": "b", "data": data}))


# --- random and hostile payloads -------------------------------------------------------------

HOSTILE_DATETIMES = [
    "2018-08-24T00:00:00z", "2018-08-24 00:00:00Z", "2018-08-24T00-00-00Z",
    "2018-08-24T00:00:00+00:00", "2018-08-24T02:00:00+02:00", "2018-08-24T00:00:00.5Z",
    "2018-08-24T00:00:00", "2018-02-30T00:00:00Z", "2018-08-24T24:00:00Z",
    "2018-08-24T00:60:00Z", "2018-08-24T00:00:60Z", "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z", "1677-12-31T23:59:59Z", "1678-01-01T00:00:00Z",
    "2261-12-31T23:59:59Z", "2262-01-01T00:00:00Z", "2018-08-2400:00:00Z",
    "2018-08-24T\u0660\u0660:00:00Z", "\u0662018-08-24T00:00:00Z", "2018-W34-5T00:00:00Z",
    "2018-08-24T00:00:00ZZ", " 2018-08-24T00:00:00Z", "2018-08-24T00:00:0Z", "", None, 0,
    1535068800, ["2018-08-24T00:00:00Z"],
]
HOSTILE_VALUES = [
    -0.0, 0, -1, -1e-300, 1e308, 1.7e308, 1e200, 1e201, 10**400, "1.5", "nan", "-0", True,
    False, None, [1], {"v": 1}, float("nan"), float("inf"), float("-inf"), 5e-324,
]

stamps = st.integers(T0 - 3 * 86400 * US, T0 + 3 * 86400 * US)
whole_seconds = stamps.map(lambda t: t - t % US)
plain_values = st.floats(0, 1e9, allow_nan=False, allow_infinity=False) | st.integers(0, 10**6)


@st.composite
def readings(draw: st.DrawFn) -> list[object]:
    """Mostly the ships' shape (ordered whole-second Z times, numbers), some of them spoiled."""
    n = draw(st.integers(1, 15))
    step = draw(st.sampled_from([1, 60, 300, 700, 900, 3600, 5401]) | st.integers(1, 86400))
    start = draw(whole_seconds)
    gaps = draw(st.lists(st.sampled_from([1, 1, 1, 2, 3]), min_size=n, max_size=n))
    out: list[object] = []
    t = start
    for g in gaps:
        out.append({"datetime": format_datetime(t), "value": draw(plain_values)})
        t += g * step * US
    for _ in range(draw(st.integers(0, 3))):
        k = draw(st.integers(0, len(out) - 1))
        how = draw(st.sampled_from(["datetime", "value", "swap", "dup", "drop-key", "junk",
                                    "fraction", "extra-key"]))
        r = out[k]
        if not isinstance(r, dict):
            continue
        r = dict(r)
        if how == "datetime":
            r["datetime"] = draw(st.sampled_from(HOSTILE_DATETIMES))
        elif how == "value":
            r["value"] = draw(st.sampled_from(HOSTILE_VALUES))
        elif how == "swap" and len(out) > 1:
            j = draw(st.integers(0, len(out) - 1))
            out[j], r = r, out[j]
        elif how == "dup":
            out.insert(draw(st.integers(0, len(out))), dict(r))
        elif how == "drop-key":
            r.pop(draw(st.sampled_from(["datetime", "value"])), None)
        elif how == "junk":
            r = draw(st.sampled_from([1, None, "x", [], [r.get("datetime"), 1]]))
        elif how == "fraction" and isinstance(r.get("datetime"), str):
            with contextlib.suppress(ValueError):  # an earlier spoiling made it unparseable
                r["datetime"] = format_datetime(parse_datetime(r["datetime"])
                                                + draw(st.integers(1, US - 1)))
        elif how == "extra-key":
            r["unit"] = "W"
        out[k] = r
    return out


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, object]:
    doc: dict[str, object] = {
        "units": draw(st.sampled_from(["kW", "kWh", "W", "Wh", "MW", "MWh", "kw", "KWH", "mW",
                                       "kVA"])),
        "data": draw(readings())}
    if draw(st.booleans()):
        doc["interval"] = draw(st.sampled_from([300, 900, 3600, 1, 0.5, 1e-7, "PT15M", "PT5M",
                                                "PT1H", 86400 * 32, "x", None, 700]))
    if draw(st.booleans()):
        doc["batch_id"] = draw(st.sampled_from(["b-1", "", "x" * 65, 7]))
    if draw(st.booleans()):
        doc["meter"] = draw(st.sampled_from(["main", "aux-1", "bad meter", 3]))
    if draw(st.booleans()):
        doc["kind"] = draw(st.sampled_from(["interval", "total", "other"]))
    if draw(st.booleans()):
        doc["spaceship_id"] = draw(st.sampled_from(["s-1", "s-2", 1]))
    return doc


@given(payloads(), st.sampled_from([900.0, 300.0, 1.0]))
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fast_path_gives_the_general_paths_results(doc: dict[str, object],
                                                   default: float) -> None:
    same(encode(doc), default_interval_s=default, max_readings=12)


@given(st.lists(st.tuples(whole_seconds, plain_values), min_size=1, max_size=30,
                unique_by=lambda r: r[0]),
       st.sampled_from(["kW", "kWh", "W", "MWh"]), st.none() | st.integers(1, 4 * 86400))
@settings(max_examples=500, deadline=None)
def test_ordered_valid_payloads_take_the_fast_path(pairs: list[tuple[int, float]], units: str,
                                                   interval: int | None) -> None:
    pairs.sort()
    data = [{"datetime": format_datetime(t), "value": v} for t, v in pairs]
    doc: dict[str, object] = {"units": units, "data": data}
    if interval is not None:
        doc["interval"] = interval
    kind, n = same(encode(doc))
    if kind != "ok":  # only too many windows between sparse readings
        assert n[0] == "too_many_windows"  # type: ignore[index]
        return
    power = units.lower() in ("kw", "w")
    mul, div = {"kw": (1.0, 1.0), "kwh": (1.0, 1.0), "w": (1.0, 1000.0),
                "mwh": (1000.0, 1.0)}[units.lower()]
    parts = _fast_parts("s-1", data, power, mul, div,
                        float(interval) if interval is not None else None, 900.0, "main")
    assert parts is not None and parts == n.parts  # type: ignore[union-attr]
    assert all(math.isfinite(p.kwh) for p in parts)


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("units", ["kW", "kWh", "W", "MWh"])
def test_each_hostile_value(value: object, units: str) -> None:
    """Every hostile value at every position, so none is left to the random draws."""
    ok = [{"datetime": f"2018-08-24T0{h}:00:00Z", "value": 1.5} for h in range(3)]
    for k in range(3):
        data = [dict(r) for r in ok]
        data[k]["value"] = value
        same(encode({"units": units, "data": data}))


@pytest.mark.parametrize("text", HOSTILE_DATETIMES)
def test_each_hostile_datetime(text: object) -> None:
    ok = [{"datetime": f"2018-08-24T0{h}:00:00Z", "value": 2} for h in range(3)]
    for k in range(3):
        data = [dict(r) for r in ok]
        data[k]["datetime"] = text
        same(encode({"units": "kW", "interval": 900, "data": data}))
