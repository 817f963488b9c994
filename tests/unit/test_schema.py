"""The storage schema's series keys: the default meter keeps the pre-meter series."""

from fleet.schema import Part, lines, meter_name, meter_tag, series_key


def test_default_meter_is_the_untagged_series() -> None:
    # Data stored before meters existed has no meter tag; a resend must overwrite it, not add to it.
    assert series_key("s1") == "energy,ship=s1"
    assert series_key("s1", "main") == "energy,ship=s1"
    assert lines([Part("s1", 0, 1.0, 900.0)]) == "energy,ship=s1 kwh=1.0,seconds=900.0 0"


def test_other_meters_are_tagged() -> None:
    body = lines([Part("s1", 0, 1.0, 900.0, "shore"), Part("s1", 0, 2.0, 900.0),
                  Part("s1", 900_000_000, 0.5, 450.0, "shore")])
    assert body.splitlines() == [
        "energy,meter=shore,ship=s1 kwh=1.0,seconds=900.0 0",
        "energy,ship=s1 kwh=2.0,seconds=900.0 0",
        "energy,meter=shore,ship=s1 kwh=0.5,seconds=450.0 900000000000",
    ]


def test_meter_tag_round_trip() -> None:
    for meter in ("main", "shore", "hotel-2"):
        assert meter_name(meter_tag(meter)) == meter
    assert meter_name(None) == "main"
