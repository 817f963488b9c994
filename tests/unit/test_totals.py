"""Unit tests for fleet.totals (rule 6) and the payload's ``meter`` and ``kind`` fields."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.errors import PayloadError
from fleet.normalize import process_payload, window_sums
from fleet.schema import Part
from fleet.timeutil import US, WINDOW_US, parse_datetime
from fleet.totals import as_set, pair_energy, pairs, parts, parts_of
from tests.contract_examples import RUNNING_TOTALS

DAY = "2018-08-24"


def at(hms: str) -> int:
    return parse_datetime(f"{DAY}T{hms}Z")


def windows_of(messages: list[list[tuple[int, float]]]) -> dict[int, float]:
    return {w: kwh for w, kwh, _ in window_sums(parts_of("s", messages, "reg"))}


def hm(table: dict[str, float]) -> dict[int, float]:
    return {at(k): v for k, v in table.items()}


EXAMPLES = RUNNING_TOTALS  # the contract's worked examples (tests/contract_examples.py)


@pytest.mark.parametrize(("messages", "expected"), EXAMPLES)
def test_contract_examples_exactly(messages: list[list[tuple[str, float]]],
                                   expected: dict[str, float]) -> None:
    msgs = [[(at(t), float(v)) for t, v in m] for m in messages]
    assert windows_of(msgs) == hm(expected)
    # Every window of the span is fully covered.
    assert all(c == 1.0 for _, _, c in window_sums(parts_of("s", msgs, "reg")))


def test_pair_energy_cases() -> None:
    assert pair_energy(1000, 1006) == 6
    assert pair_energy(1000, 1000) == 0
    assert pair_energy(1000, 900) == 0  # exactly 0.9a: a dip
    assert pair_energy(1000, 899.9) == 899.9  # below 0.9a: a reset
    assert pair_energy(0, 0) == 0


def test_first_reading_only_sets_the_start() -> None:
    assert list(parts("s", [(at("00:00:00"), 5.0)])) == []


def test_split_inside_a_window_keeps_reading_times_as_keys() -> None:
    ps = list(parts("s", [(at("00:00:00"), 0.0), (at("00:20:00"), 2.0), (at("00:30:00"), 3.0)]))
    assert [(p.start_us, p.seconds) for p in ps] == [
        (at("00:00:00"), 900.0), (at("00:15:00"), 300.0), (at("00:20:00"), 600.0)]
    assert all(p.meter == "main" for p in ps)


def test_unsorted_readings_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        list(pairs([(2, 1.0), (1, 2.0)]))


# -- properties ---------------------------------------------------------------------------------

_times = st.integers(min_value=0, max_value=96).map(lambda k: at("00:00:00") + k * 300 * US
                                                   + (k % 7) * 13 * US)
_values = st.one_of(st.integers(0, 5000).map(float),
                    st.floats(0, 1e6, allow_nan=False, allow_infinity=False))
_readings = st.dictionaries(_times, _values, min_size=0, max_size=25).map(
    lambda d: sorted(d.items()))


def _close(a: dict[int, float], b: dict[int, float]) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], rel_tol=1e-9, abs_tol=1e-9)
                                        for k in a)


@settings(max_examples=150, deadline=None)
@given(_readings, st.randoms(use_true_random=False), st.integers(1, 6))
def test_any_permutation_and_split_gives_the_same_windows(
        readings: list[tuple[int, float]], rnd: object, pieces: int) -> None:
    import random
    assert isinstance(rnd, random.Random)
    shuffled = readings[:]
    rnd.shuffle(shuffled)
    cuts = sorted(rnd.randrange(len(shuffled) + 1) for _ in range(pieces - 1))
    messages = [shuffled[i:j] for i, j in zip([0, *cuts], [*cuts, len(shuffled)], strict=True)]
    reference = windows_of([readings])
    assert windows_of(messages) == reference  # the same set: exactly the same windows


@settings(max_examples=150, deadline=None)
@given(_readings, st.data())
def test_inserting_a_reading_changes_nothing_outside_its_span(
        readings: list[tuple[int, float]], data: st.DataObject) -> None:
    if len(readings) < 2:
        return
    i = data.draw(st.integers(0, len(readings) - 2))
    (ta, _), (tb, _) = readings[i], readings[i + 1]
    if tb - ta < 2:
        return
    t = data.draw(st.integers(ta + 1, tb - 1))
    v = data.draw(_values)
    before = {p.start_us: p for p in parts("s", readings)}
    after = {p.start_us: p for p in parts("s", as_set([*readings, (t, v)]))}
    outside = {k for k in before.keys() | after.keys() if not ta <= k < tb}
    assert {k: before.get(k) for k in outside} == {k: after.get(k) for k in outside}
    # The span's parts still cover it exactly.
    assert sum(round(p.seconds * US) for p in after.values() if ta <= p.start_us < tb) == tb - ta


@settings(max_examples=150, deadline=None)
@given(_readings)
def test_windows_sum_to_the_pairwise_energies(readings: list[tuple[int, float]]) -> None:
    total = math.fsum(kwh for _, kwh in windows_of([readings]).items())
    pairwise = math.fsum(e for _, _, e in pairs(readings))
    assert math.isclose(total, pairwise, rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=100, deadline=None)
@given(_readings)
def test_part_keys_only_gain_boundaries(readings: list[tuple[int, float]]) -> None:
    """Every key of a subset's parts inside the full set's span is a key of the full set's."""
    if len(readings) < 3:
        return
    subset = readings[::2]
    full = {p.start_us for p in parts("s", readings)}
    assert {p.start_us for p in parts("s", subset)} <= full


# -- the payload's meter and kind ---------------------------------------------------------------

def payload(**extra: object) -> str:
    return json.dumps({"units": "kWh", "data": [{"datetime": f"{DAY}T00:00:00Z", "value": 1000},
                                                {"datetime": f"{DAY}T00:30:00Z", "value": 1006}],
                       **extra})


def test_meter_defaults_to_main_and_reaches_the_parts() -> None:
    n = process_payload("s", payload())
    assert n.meter == "main" and n.kind == "interval"
    assert {p.meter for p in n.parts} == {"main"}
    n = process_payload("s", payload(meter="shore-1"))
    assert n.meter == "shore-1" and {p.meter for p in n.parts} == {"shore-1"}


@pytest.mark.parametrize("meter", ["", "x" * 33, "a b", "é", 7, None, "a/b", "main\n"])
def test_bad_meter_is_refused(meter: object) -> None:
    with pytest.raises(PayloadError) as info:
        process_payload("s", payload(meter=meter, batch_id="b1"))
    assert info.value.reason == "bad_meter" and info.value.batch_id == "b1"


@pytest.mark.parametrize(("kind", "units"), [("register", "kWh"), ("", "kWh"), (1, "kWh"),
                                             ("total", "kW"), ("total", "W"), ("Total", "kWh")])
def test_bad_kind_is_refused(kind: object, units: str) -> None:
    doc = json.loads(payload(kind=kind))
    doc["units"] = units
    with pytest.raises(PayloadError) as info:
        process_payload("s", json.dumps(doc))
    assert info.value.reason == "bad_kind"


def test_total_payload_carries_registers_not_parts() -> None:
    doc = json.loads(payload(kind="total", meter="reg"))
    doc["units"] = "Wh"
    doc["data"].append({"datetime": f"{DAY}T00:15:00Z", "value": -1})
    n = process_payload("s", json.dumps(doc))
    assert n.parts == [] and n.kind == "total" and n.meter == "reg"
    assert n.registers == [(at("00:00:00"), 1.0), (at("00:30:00"), 1.006)]
    assert [r.reason for r in n.rejected] == ["negative"]


def test_parts_are_parts() -> None:
    p = next(parts("s", [(0, 0.0), (WINDOW_US, 1.0)], "m"))
    assert p == Part("s", 0, 1.0, 900.0, "m")
