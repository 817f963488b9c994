"""Unit tests for fleet.normalize: the contract's worked examples, every reason code, properties."""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleet.config import parse_duration
from fleet.errors import PayloadError
from fleet.normalize import Normalized, ReadingError, Window, normalize, process_payload, windows
from fleet.schema import Part
from fleet.timeutil import US, WINDOW_US, format_datetime, parse_datetime

REL = 1e-9
DAY = "2018-08-24"
T0 = parse_datetime(f"{DAY}T00:00:00Z")
MIN_US = 60 * US
HOUR_US = 3600 * US


def at(hms: str) -> int:
    return parse_datetime(f"{DAY}T{hms}Z")


def series(start: str, step_s: float, values: Sequence[object]) -> list[dict[str, object]]:
    t = at(start)
    return [{"datetime": format_datetime(t + round(i * step_s * US)), "value": v}
            for i, v in enumerate(values)]


def run(doc: object, ship: str = "1", **kw: Any) -> Normalized:
    raw = doc if isinstance(doc, bytes | str) else json.dumps(doc).encode()
    return process_payload(ship, raw, **kw)


def table(n: Normalized, every_s: int = 900) -> dict[int, tuple[float, float]]:
    return {w.start_us: (w.kwh, w.coverage) for w in windows(n.parts, every_s)}


def assert_windows(got: dict[int, tuple[float, float]],
                   want: dict[int, tuple[float, float]]) -> None:
    assert sorted(got) == sorted(want), (
        [format_datetime(t) for t in sorted(got)], [format_datetime(t) for t in sorted(want)])
    for t, (kwh, coverage) in want.items():
        assert got[t][0] == pytest.approx(kwh, rel=REL, abs=1e-12), format_datetime(t)
        assert got[t][1] == pytest.approx(coverage, rel=REL, abs=1e-12), format_datetime(t)


def quarters(start: str, values: Sequence[float], coverage: float = 1.0) -> dict[
        int, tuple[float, float]]:
    t = at(start)
    return {t + i * WINDOW_US: (v, coverage) for i, v in enumerate(values)}


# --- CONTRACT section 4: the worked examples, each exactly ------------------------------------

WORKED = [
    pytest.param(
        {"units": "kWh", "data": series("00:00:00", 3600, [12, 26, 18])},
        quarters("00:00:00", [3] * 4 + [6.5] * 4 + [4.5] * 4),
        id="kWh-hourly",
    ),
    pytest.param(
        {"units": "kW", "data": series("00:00:00", 300, [22, 24, 23, 18, 22, 23, 8])},
        {at("00:00:00"): (69 / 12, 1.0), at("00:15:00"): (63 / 12, 1.0),
         at("00:30:00"): (8 * 300 / 3600, 1 / 3)},
        id="kW-5min",
    ),
    pytest.param(
        {"units": "kWh", "data": series("00:00:00", 900, [2, 5, 2, 6])},
        quarters("00:00:00", [2, 5, 2, 6]),
        id="kWh-15min",
    ),
    pytest.param(
        {"units": "kW", "interval": "PT1H", "data": series("04:00:00", 0, [2])},
        quarters("04:00:00", [0.5] * 4),
        id="kW-declared-PT1H",
    ),
    pytest.param(
        {"units": "kW", "data": series("04:00:00", 0, [2])},
        quarters("04:00:00", [0.5]),
        id="kW-lone-default",
    ),
    pytest.param(
        {"units": "kW", "data": series("23:00:01", 300, [2, 1, 6])},
        {at("23:00:00"): (0.25 + 6 * (299 / 3600), 899 / 900),
         at("23:15:00"): (6 * (1 / 3600), 1 / 900)},
        id="kW-5min-off-boundary",
    ),
]


@pytest.mark.parametrize(("doc", "want"), WORKED)
def test_worked_examples(doc: dict[str, Any], want: dict[int, tuple[float, float]]) -> None:
    n = run(doc)
    assert n.accepted == len(doc["data"])
    assert n.rejected == []
    assert_windows(table(n), want)


def test_worked_example_parts_are_sorted_and_exact() -> None:
    n = run({"units": "kW", "data": series("23:00:01", 300, [2, 1, 6])})
    assert [p.start_us for p in n.parts] == [at("23:00:01"), at("23:05:01"), at("23:10:01"),
                                            at("23:15:00")]
    assert [p.seconds for p in n.parts] == [300.0, 300.0, 299.0, 1.0]
    assert all(p.ship == "1" for p in n.parts)


# --- whole-payload refusals ------------------------------------------------------------------

GOOD: dict[str, object] = {"units": "kW",
                           "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 1}]}


def with_(**changes: object) -> dict[str, object]:
    doc = dict(GOOD)
    doc.update(changes)
    return doc


def without(key: str) -> dict[str, object]:
    return {k: v for k, v in GOOD.items() if k != key}


REFUSED = [
    pytest.param(b"{", "not_json", id="truncated"),
    pytest.param(b"", "not_json", id="empty"),
    pytest.param(b'{"units": "kW", "data": [\xff]}', "not_json", id="invalid-utf8"),
    pytest.param(json.dumps(GOOD).encode("utf-16"), "not_json", id="utf16-is-not-utf8"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, "not_json", id="nested-too-deep"),
    pytest.param(b"[]", "not_object", id="list"),
    pytest.param(b"12", "not_object", id="number"),
    pytest.param(b"null", "not_object", id="null"),
    pytest.param(b'"units"', "not_object", id="string"),
    pytest.param(without("units"), "missing_units", id="missing-units"),
    pytest.param(with_(units="kVA"), "unknown_units", id="kVA"),
    pytest.param(with_(units="kW/h"), "unknown_units", id="kW/h"),
    pytest.param(with_(units=" kW"), "unknown_units", id="padded"),
    pytest.param(with_(units=None), "unknown_units", id="units-null"),
    pytest.param(with_(units=1), "unknown_units", id="units-number"),
    pytest.param(with_(units="mW"), "unknown_units", id="milliwatt-not-megawatt"),
    pytest.param(with_(units="mWh"), "unknown_units", id="milliwatt-hour"),
    pytest.param(without("data"), "missing_data", id="missing-data"),
    pytest.param(with_(data={"datetime": f"{DAY}T00:00:00Z", "value": 1}), "data_not_list",
                 id="data-object"),
    pytest.param(with_(data=None), "data_not_list", id="data-null"),
    pytest.param(with_(data=[]), "empty_data", id="empty-data"),
    pytest.param(with_(spaceship_id=2), "ship_mismatch", id="other-ship"),
    pytest.param(with_(spaceship_id="01"), "ship_mismatch", id="leading-zero"),
    pytest.param(with_(spaceship_id=1.0), "ship_mismatch", id="float-id"),
    pytest.param(with_(spaceship_id=True), "ship_mismatch", id="bool-id"),
    pytest.param(with_(spaceship_id=None), "ship_mismatch", id="null-id"),
    pytest.param(with_(data=series("00:00:00", 300, [1] * 11)), "too_many_readings",
                 id="too-many"),
    pytest.param(with_(interval="PT0S"), "bad_interval", id="zero-duration"),
    pytest.param(with_(interval=0), "bad_interval", id="zero-seconds"),
    pytest.param(with_(interval=-300), "bad_interval", id="negative"),
    pytest.param(with_(interval="P32D"), "bad_interval", id="over-31-days"),
    pytest.param(with_(interval=31 * 86400 + 1), "bad_interval", id="over-31-days-seconds"),
    pytest.param(with_(interval="5 minutes"), "bad_interval", id="prose"),
    pytest.param(with_(interval="PT"), "bad_interval", id="PT"),
    pytest.param(with_(interval=True), "bad_interval", id="bool"),
    pytest.param(with_(interval=None), "bad_interval", id="null"),
    pytest.param(with_(interval=[300]), "bad_interval", id="list"),
    pytest.param(with_(interval="nan"), "bad_interval", id="nan"),
    pytest.param(with_(interval=1e-7), "bad_interval", id="under-a-microsecond"),
    pytest.param(json.dumps(GOOD)[:-1] + ', "interval": 1' + "0" * 400 + "}", "bad_interval",
                 id="huge-int"),
    pytest.param(with_(batch_id=""), "bad_batch_id", id="empty-batch"),
    pytest.param(with_(batch_id="x" * 65), "bad_batch_id", id="long-batch"),
    pytest.param(with_(batch_id="a\nb"), "bad_batch_id", id="control-char"),
    pytest.param(with_(batch_id=7), "bad_batch_id", id="number-batch"),
    pytest.param(with_(batch_id=None), "bad_batch_id", id="null-batch"),
]


@pytest.mark.parametrize(("doc", "reason"), REFUSED)
def test_refused_payloads(doc: object, reason: str) -> None:
    with pytest.raises(PayloadError) as info:
        run(doc, max_readings=10)
    assert info.value.reason == reason
    assert info.value.detail
    assert info.value.batch_id is None


def test_too_large_is_checked_before_parsing() -> None:
    raw = json.dumps(GOOD).encode()
    assert run(raw, max_bytes=len(raw)).accepted == 1
    with pytest.raises(PayloadError) as info:
        run(raw, max_bytes=len(raw) - 1)
    assert info.value.reason == "too_large"


@pytest.mark.parametrize("doc", [p.values[0] for p in REFUSED
                                 if isinstance(p.values[0], dict)
                                 and p.values[1] != "bad_batch_id"])
def test_refusal_echoes_a_valid_batch_id(doc: dict[str, object]) -> None:
    with pytest.raises(PayloadError) as info:
        run({**doc, "batch_id": "batch 7/ü"}, max_readings=10)
    assert info.value.batch_id == "batch 7/ü"


@pytest.mark.parametrize("batch_id", ["b", "x" * 64, "2018-08-24 #12 ü"])
def test_valid_batch_ids_are_kept(batch_id: str) -> None:
    assert run(with_(batch_id=batch_id)).batch_id == batch_id


@pytest.mark.parametrize(("ship", "sid"), [("1", 1), ("1", "1"), ("demo-1", "demo-1")])
def test_matching_spaceship_id(ship: str, sid: object) -> None:
    assert run(with_(spaceship_id=sid), ship=ship).accepted == 1


def test_bad_ship_argument_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="ship"):
        run(GOOD, ship="a b")


def test_normalized_fields() -> None:
    n = run(with_(units="KW", batch_id="b-1"), ship="s_1")
    assert (n.ship, n.batch_id, n.units, n.accepted, n.rejected) == ("s_1", "b-1", "KW", 1, [])
    assert n.parts == [Part("s_1", T0, 0.25, 900.0)]
    assert run(GOOD).batch_id is None


# --- per-reading refusals --------------------------------------------------------------------

OK = {"datetime": f"{DAY}T01:00:00Z", "value": 1}

READING_REFUSED = [
    pytest.param(5, "not_object", id="number"),
    pytest.param(None, "not_object", id="null"),
    pytest.param([f"{DAY}T00:00:00Z", 1], "not_object", id="pair"),
    pytest.param({"value": 1}, "bad_datetime", id="no-datetime"),
    pytest.param({"datetime": None, "value": 1}, "bad_datetime", id="null-datetime"),
    pytest.param({"datetime": "yesterday", "value": 1}, "bad_datetime", id="prose"),
    pytest.param({"datetime": 1535068800, "value": 1}, "bad_datetime", id="epoch-number"),
    pytest.param({"datetime": "2018-13-01T00:00:00Z", "value": 1}, "bad_datetime",
                 id="month-13"),
    pytest.param({"datetime": "2018-08-24T24:00:00Z", "value": 1}, "bad_datetime", id="hour-24"),
    pytest.param({"datetime": "1600-01-01T00:00:00Z", "value": 1}, "bad_datetime",
                 id="before-int64-ns"),
    pytest.param({"datetime": "2300-01-01T00:00:00Z", "value": 1}, "bad_datetime",
                 id="after-int64-ns"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z"}, "missing_value", id="no-value"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": None}, "bad_value", id="null"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": True}, "bad_value", id="bool"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": [1]}, "bad_value", id="list"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": {"kW": 1}}, "bad_value", id="object"),
    *[pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": s}, "bad_value", id=f"str-{s!r}")
      for s in ["nan", "NaN", "inf", "Infinity", "0x10", "1_000", " 5", "5 ", "", "-", "1e",
                "1,5", "five", "\u0665"]],
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": float("nan")}, "not_finite",
                 id="NaN"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": float("inf")}, "not_finite",
                 id="Infinity"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": float("-inf")}, "not_finite",
                 id="-Infinity"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": "1e309"}, "not_finite",
                 id="str-1e309"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": -1}, "negative", id="minus-one"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": -1e-300}, "negative", id="tiny"),
    pytest.param({"datetime": f"{DAY}T00:00:00Z", "value": "-0.5"}, "negative", id="str"),
]


@pytest.mark.parametrize(("reading", "reason"), READING_REFUSED)
def test_refused_readings_keep_the_others(reading: object, reason: str) -> None:
    n = run({"units": "kW", "batch_id": "b", "data": [OK, reading, OK | {
        "datetime": f"{DAY}T01:15:00Z"}]})
    assert [(e.index, e.reason) for e in n.rejected] == [(1, reason)]
    assert n.rejected[0].detail
    assert n.accepted == 2
    assert n.batch_id == "b"
    assert [p.start_us for p in n.parts] == [at("01:00:00"), at("01:15:00")]


@pytest.mark.parametrize("literal", ["1e309", "-1e309", "NaN", "Infinity", "-Infinity",
                                     "1" + "0" * 400])
def test_non_finite_json_literals(literal: str) -> None:
    raw = f'{{"units": "kWh", "data": [{{"datetime": "{DAY}T00:00:00Z", "value": {literal}}}]}}'
    n = run(raw)
    assert [e.reason for e in n.rejected] == ["not_finite"]
    assert (n.accepted, n.parts) == (0, [])


def test_all_readings_refused_is_not_an_exception() -> None:
    n = run({"units": "kW", "batch_id": "b",
             "data": [1, {"value": 1}, {"datetime": f"{DAY}T00:00:00Z", "value": -1}]})
    assert (n.accepted, n.parts, n.batch_id) == (0, [], "b")
    assert [(e.index, e.reason) for e in n.rejected] == [
        (0, "not_object"), (1, "bad_datetime"), (2, "negative")]
    assert all(isinstance(e, ReadingError) for e in n.rejected)


@pytest.mark.parametrize(("units", "value"), [("MW", 1e306), ("kW", 1e250), ("kWh", "1e201")])
def test_values_too_large_to_store_are_not_finite(units: str, value: object) -> None:
    # Finite in JSON, but conversion or kW x hours would overflow; kept values never do.
    n = run({"units": units, "interval": "P31D",
             "data": [{"datetime": f"{DAY}T00:00:00Z", "value": value}]})
    assert [e.reason for e in n.rejected] == ["not_finite"]
    n = run({"units": "kW", "interval": "P31D",
             "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 1e200}]})
    assert n.accepted == 1
    assert all(math.isfinite(p.kwh) for p in n.parts)


@pytest.mark.parametrize("value", [0, -0.0, "-0", "0", 0.0])
def test_zero_and_minus_zero_are_kept_as_plus_zero(value: object) -> None:
    n = run({"units": "kWh", "data": [{"datetime": f"{DAY}T00:00:00Z", "value": value}]})
    assert n.accepted == 1
    assert [math.copysign(1.0, p.kwh) for p in n.parts] == [1.0]


def test_every_reading_sharing_a_duplicated_timestamp_is_refused() -> None:
    data = series("00:00:00", 300, [1, 2, 3, 4])
    data.insert(1, {"datetime": f"{DAY}T02:05:00+02:00", "value": 9})  # 00:05Z again
    data.append({"datetime": f"{DAY}T00-00-00Z", "value": 8})  # 00:00Z again, dashed
    n = run({"units": "kW", "data": data})
    assert [(e.index, e.reason) for e in n.rejected] == [
        (0, "duplicate_datetime"), (1, "duplicate_datetime"), (2, "duplicate_datetime"),
        (5, "duplicate_datetime")]
    assert n.accepted == 2
    # The refused readings' slots stay gaps; the rest keep the 5-minute interval.
    assert [(p.start_us, p.seconds) for p in n.parts] == [(at("00:10:00"), 300.0),
                                                         (at("00:15:00"), 300.0)]


def test_a_duplicate_of_a_refused_reading_is_refused_too() -> None:
    n = run({"units": "kW", "data": [{"datetime": f"{DAY}T00:00:00Z", "value": "x"},
                                     {"datetime": f"{DAY}T00:00:00Z", "value": 1}]})
    assert [(e.index, e.reason) for e in n.rejected] == [(0, "bad_value"),
                                                         (1, "duplicate_datetime")]
    assert n.accepted == 0


def test_a_refused_reading_leaves_a_gap_and_does_not_stretch_its_predecessor() -> None:
    n = run({"units": "kWh", "data": series("00:00:00", 3600, [12, "oops", 18])})
    assert [e.reason for e in n.rejected] == ["bad_value"]
    assert_windows(table(n), quarters("00:00:00", [3] * 4) | quarters("02:00:00", [4.5] * 4))


# --- datetimes, values, units ------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    f"{DAY}T00:00:00Z",
    f"{DAY}T00-00-00Z",
    f"{DAY}T00:00:00z",
    f"{DAY}T00:00:00+00:00",
    f"{DAY}T02:00:00+02:00",
    f"{DAY}T02:00:00+0200",
    f"{DAY}T02-00-00+02:00",
    "2018-08-23T18:30:00-05:30",
    f"{DAY}T00:00:00",
    f"{DAY} 00:00:00Z",
    f"{DAY}T00:00:00.000000Z",
    " 2018-08-24T00:00:00Z ",
])
def test_datetime_forms(text: str) -> None:
    n = run({"units": "kW", "data": [{"datetime": text, "value": 4}]})
    assert n.parts == [Part("1", T0, 1.0, 900.0)]


def test_dashed_form_with_fraction() -> None:
    assert parse_datetime(f"{DAY}T00-05-00.25Z") == T0 + 5 * MIN_US + 250_000


@given(st.datetimes(min_value=datetime(1678, 1, 1), max_value=datetime(2261, 12, 31)),
       st.sampled_from(["Z", "+00:00", "+05:30", "-11:00", ""]))
@settings(max_examples=300, deadline=None)
def test_dashed_form_reads_like_the_colon_form(dt: datetime, zone: str) -> None:
    frac = f".{dt.microsecond:06d}" if dt.microsecond else ""
    colon = dt.strftime("%Y-%m-%dT%H:%M:%S") + frac + zone
    dashed = dt.strftime("%Y-%m-%dT%H-%M-%S") + frac + zone
    assert parse_datetime(dashed) == parse_datetime(colon)


@pytest.mark.parametrize(("value", "kw"), [
    ("22", 22.0), ("2.5", 2.5), ("1e3", 1000.0), ("+4", 4.0), (".5", 0.5), ("5.", 5.0),
    ("1E-2", 0.01), (7, 7.0), (7.25, 7.25),
])
def test_values_numbers_and_decimal_strings(value: object, kw: float) -> None:
    n = run({"units": "kW", "data": [{"datetime": f"{DAY}T00:00:00Z", "value": value}]})
    assert n.parts == [Part("1", T0, kw / 4, 900.0)]


@pytest.mark.parametrize(("units", "value", "kwh"), [
    ("kW", 4, 1.0), ("KW", 4, 1.0), ("kw", 4, 1.0), ("Kw", 4, 1.0),
    ("W", 4000, 1.0), ("w", 4000, 1.0), ("MW", 0.004, 1.0), ("mw", 0.004, 1.0),
    ("kWh", 1, 1.0), ("KWH", 1, 1.0), ("kwh", 1, 1.0),
    ("Wh", 1500, 1.5), ("WH", 1500, 1.5), ("MWh", 0.0015, 1.5), ("MWH", 0.0015, 1.5),
])
def test_unit_conversions(units: str, value: float, kwh: float) -> None:
    n = run({"units": units, "data": [{"datetime": f"{DAY}T00:00:00Z", "value": value}]})
    assert n.units == units
    assert len(n.parts) == 1
    assert n.parts[0].kwh == pytest.approx(kwh, rel=REL)


# --- intervals ---------------------------------------------------------------------------------

@pytest.mark.parametrize("interval", ["PT5M", "pt5m", 300, 300.0, "300", "PT300S",
                                      "PT0.08333333333333333H"])
def test_declared_interval_forms(interval: object) -> None:
    n = run({"units": "kW", "interval": interval, "data": series("00:00:00", 900, [12])})
    [part] = n.parts
    assert part.start_us == T0
    assert part.kwh == pytest.approx(1.0, rel=REL)
    assert part.seconds == pytest.approx(300.0, rel=REL)


def test_declared_interval_shorter_than_spacing_leaves_gaps() -> None:
    n = run({"units": "kW", "interval": "PT5M", "data": series("00:00:00", 900, [12, 24])})
    assert_windows(table(n), {at("00:00:00"): (1.0, 1 / 3), at("00:15:00"): (2.0, 1 / 3)})


def test_declared_interval_longer_than_spacing_is_cut_at_the_successor() -> None:
    # kWh: a cut reading keeps its full energy over its shortened span.
    n = run({"units": "kWh", "interval": "PT1H",
             "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 12},
                      {"datetime": f"{DAY}T00:30:00Z", "value": 6}]})
    assert_windows(table(n), quarters("00:00:00", [6, 6, 1.5, 1.5, 1.5, 1.5]))
    # kW: energy follows the time covered.
    n = run({"units": "kW", "interval": "PT1H",
             "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 4},
                      {"datetime": f"{DAY}T00:30:00Z", "value": 8}]})
    assert_windows(table(n), quarters("00:00:00", [1, 1, 2, 2, 2, 2]))


def test_inferred_interval_is_the_most_common_spacing() -> None:
    data = series("00:00:00", 300, [1, 1, 1]) + series("01:00:00", 300, [1, 1])
    n = run({"units": "kW", "data": data})
    assert [p.seconds for p in n.parts] == [300.0] * 5


def test_inferred_interval_ties_go_to_the_smaller_spacing() -> None:
    data = [{"datetime": f"{DAY}T00:{m:02d}:00Z", "value": 12} for m in (0, 5, 15)]
    n = run({"units": "kW", "data": data})
    assert [(p.start_us, p.seconds) for p in n.parts] == [
        (at("00:00:00"), 300.0), (at("00:05:00"), 300.0), (at("00:15:00"), 300.0)]


def test_lone_reading_takes_the_configured_default() -> None:
    n = run({"units": "kW", "data": series("04:00:00", 0, [2])}, default_interval_s=3600.0)
    assert_windows(table(n), quarters("04:00:00", [0.5] * 4))


def test_microsecond_timestamps_split_exactly_at_boundaries() -> None:
    t = at("00:14:59") + 999_999
    n = run({"units": "kW", "interval": 2e-6,
             "data": [{"datetime": format_datetime(t), "value": 3600}]})
    assert [(p.start_us, p.seconds) for p in n.parts] == [(t, 1e-6), (t + 1, 1e-6)]
    assert [p.kwh for p in n.parts] == [pytest.approx(1e-6, rel=REL)] * 2


# --- normalize() and windows() directly ------------------------------------------------------

def test_normalize_empty_and_duplicates() -> None:
    assert normalize("1", [], power=True, interval_s=None) == []
    with pytest.raises(ValueError, match="unique"):
        normalize("1", [(T0, 1.0), (T0, 2.0)], power=True, interval_s=None)
    with pytest.raises(ValueError, match="unique"):
        normalize("1", [(T0, 1.0), (T0, 2.0)], power=True, interval_s=300, others=[T0 + 1])


def test_normalize_others_bound_readings() -> None:
    parts = normalize("1", [(T0, 12.0)], power=True, interval_s=None, others=[T0 + 5 * MIN_US])
    assert [(p.start_us, p.seconds, p.kwh) for p in parts] == [(T0, 300.0, 1.0)]


def test_windows_hourly_and_daily() -> None:
    n = run({"units": "kW", "data": series("00:00:00", 300, [22, 24, 23, 18, 22, 23, 8])})
    [hour] = windows(n.parts, 3600)
    assert isinstance(hour, Window)
    assert hour.start_us == T0
    assert hour.kwh == pytest.approx(5.75 + 5.25 + 8 / 12, rel=REL)
    assert hour.coverage == pytest.approx(35 / 60, rel=REL)
    [day] = windows(n.parts, 86400)
    assert day.coverage == pytest.approx(35 / 1440, rel=REL)


@pytest.mark.parametrize("every", [0, -900, 300, 1000, 900.0, True])
def test_windows_refuses_sizes_that_would_split_parts(every: Any) -> None:
    with pytest.raises(ValueError, match="every_s"):
        windows([], every)


def test_windows_counts_a_resent_part_once() -> None:
    doc = {"units": "kWh", "data": series("00:00:00", 900, [2, 5])}
    parts, resent = run(doc).parts, run(doc).parts
    assert windows(parts + resent) == windows(parts)
    assert windows(parts + resent, 3600) == windows(parts, 3600)
    # The last copy wins, as the database overwrites a point.
    fixed = run({**doc, "data": series("00:00:00", 900, [3, 5])}).parts
    assert [w.kwh for w in windows(parts + fixed)] == [3, 5]
    assert windows([]) == []


def test_parse_duration_huge_integer_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_duration(10**400)


# --- properties --------------------------------------------------------------------------------

# Timestamps within a few days of T0, at microsecond resolution, to exercise odd boundaries.
starts = st.integers(T0 - 2 * 86400 * US, T0 + 3 * 86400 * US)
values = st.floats(0, 1e6, allow_nan=False, allow_infinity=False)
readings_st = st.lists(st.tuples(starts, values), min_size=1, max_size=40,
                       unique_by=lambda r: r[0])
intervals = st.none() | st.integers(1, 2 * 86400 * US).map(lambda us: us / US)


def reference_spans(readings: Sequence[tuple[int, float]], interval_s: float | None,
                    others: Sequence[int] = (), default_s: float = 900.0,
                    ) -> tuple[int, dict[int, int]]:
    """(interval, start -> microseconds covered) by the contract's rule 1, written naively."""
    stamps = sorted({t for t, _ in readings} | set(others))
    if interval_s is not None:
        interval = round(interval_s * US)
    elif len(stamps) == 1:
        interval = round(default_s * US)
    else:
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        interval = min(set(gaps), key=lambda g: (-gaps.count(g), g))
    spans = {}
    for t, _ in readings:
        later = [s for s in stamps if s > t]
        spans[t] = min(interval, later[0] - t) if later else interval
    return interval, spans


@given(readings_st, intervals, st.booleans(), st.lists(starts, max_size=5))
@settings(max_examples=300, deadline=None)
def test_energy_is_conserved(readings: list[tuple[int, float]], interval_s: float | None,
                             power: bool, others: list[int]) -> None:
    others = [t for t in others if t not in {r[0] for r in readings}]
    parts = normalize("1", readings, power=power, interval_s=interval_s, others=others)
    interval, spans = reference_spans(readings, interval_s, others)
    by_reading: dict[int, list[Part]] = {t: [] for t, _ in readings}
    ends = sorted(readings)
    for p in parts:  # each part belongs to the latest reading starting at or before it
        owner = max(t for t, _ in ends if t <= p.start_us)
        assert p.start_us < owner + spans[owner], "a part outside its reading's span"
        assert p.start_us // WINDOW_US == (p.start_us + round(p.seconds * US) - 1) // WINDOW_US
        by_reading[owner].append(p)
    uncut_parts = uncut_energy = 0.0
    for t, v in readings:
        mine = by_reading[t]
        assert sum(round(p.seconds * US) for p in mine) == spans[t]
        energy = v * spans[t] / (3600 * US) if power else v
        assert math.fsum(p.kwh for p in mine) == pytest.approx(energy, rel=REL, abs=1e-12)
        if spans[t] == interval:  # not cut short
            uncut_parts += math.fsum(p.kwh for p in mine)
            uncut_energy += energy
    assert uncut_parts == pytest.approx(uncut_energy, rel=REL, abs=1e-9)


def payload(readings: Sequence[tuple[int, float]], units: str,
            interval: object = None) -> dict[str, object]:
    doc: dict[str, object] = {"units": units,
                              "data": [{"datetime": format_datetime(t), "value": v}
                                       for t, v in readings]}
    if interval is not None:
        doc["interval"] = interval
    return doc


@given(
    interval_us=st.integers(1, 4 * 3600).map(lambda s: s * US) | st.integers(1, 10**10),
    slots=st.sets(st.integers(0, 300), min_size=1, max_size=40),
    units=st.sampled_from(["kW", "kWh", "W", "MWh"]),
    data=st.data(),
)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_splitting_a_payload_gives_the_same_windows(interval_us: int, slots: set[int],
                                                    units: str, data: st.DataObject) -> None:
    base = data.draw(starts)
    readings = [(base + k * interval_us, data.draw(values)) for k in sorted(slots)]
    interval_s = interval_us / US
    whole = run(payload(readings, units, interval_s))
    n_chunks = data.draw(st.integers(1, 5))
    chunks: list[list[tuple[int, float]]] = [[] for _ in range(n_chunks)]
    for r in data.draw(st.permutations(readings)):
        chunks[data.draw(st.integers(0, n_chunks - 1))].append(r)
    parts = [p for c in chunks if c for p in run(payload(c, units, interval_s)).parts]
    assert sorted(parts, key=lambda p: p.start_us) == whole.parts
    assert windows(parts) == windows(whole.parts)
    assert windows(parts, 3600) == windows(whole.parts, 3600)


bad_readings = st.sampled_from([
    5, {"value": 1}, {"datetime": "x", "value": 1},
    {"datetime": f"{DAY}T00:00:00Z", "value": "nan"},
    {"datetime": f"{DAY}T00:07:00Z", "value": -2},
    {"datetime": f"{DAY}T00:07:00Z"},
])


@given(readings_st, st.lists(bad_readings, max_size=4), intervals, st.booleans(), st.randoms())
@settings(max_examples=200, deadline=None)
def test_result_does_not_depend_on_reading_order(readings: list[tuple[int, float]],
                                                 bad: list[object], interval_s: float | None,
                                                 power: bool, rnd: random.Random) -> None:
    doc = payload(readings, "kW" if power else "kWh", interval_s)
    items = [{"datetime": format_datetime(t), "value": v} for t, v in readings] + bad
    order = list(range(len(items)))
    rnd.shuffle(order)
    a = run({**doc, "data": items})
    b = run({**doc, "data": [items[i] for i in order]})
    assert b.parts == a.parts
    assert b.accepted == a.accepted
    assert sorted((order[e.index], e.reason) for e in b.rejected) == sorted(
        (e.index, e.reason) for e in a.rejected)


@given(readings_st, intervals, st.booleans(), st.sampled_from([900, 3600, 86400]),
       st.lists(starts, max_size=3))
@settings(max_examples=300, deadline=None)
def test_windows_are_sane(readings: list[tuple[int, float]], interval_s: float | None,
                          power: bool, every: int, dup_starts: list[int]) -> None:
    # Some duplicates on purpose: they are refused, and what remains must still be sane.
    doc = payload(readings + [(t, 1.0) for t in dup_starts], "kW" if power else "kWh",
                  interval_s)
    n = run(doc)
    ws = windows(n.parts, every)
    assert [w.start_us for w in ws] == sorted({w.start_us for w in ws})
    for w in ws:
        assert w.start_us % (every * US) == 0
        assert 0.0 < w.coverage <= 1.0
        assert w.kwh >= 0.0
        assert math.isfinite(w.kwh)


def test_payload_spanning_too_many_windows_is_refused() -> None:
    """Two readings ten years apart with no interval would expand into ~350,000 parts."""
    raw = json.dumps({"units": "kWh", "batch_id": "b1", "data": [
        {"datetime": "2008-01-01T00:00:00Z", "value": 1},
        {"datetime": "2018-01-01T00:00:00Z", "value": 1}]})
    with pytest.raises(PayloadError) as info:
        process_payload("s1", raw)
    assert (info.value.reason, info.value.batch_id) == ("too_many_windows", "b1")
