"""The rendered answers kept beside the window cache (query_service/render.py)."""

from __future__ import annotations

import json

from query_service.render import RenderedKeep, dumps, rendered


def _done(text: str) -> tuple[bytes, str, str]:
    return text.encode(), "application/json", ""


def test_an_answer_is_served_only_for_the_very_rows_it_was_rendered_from() -> None:
    keep = RenderedKeep()
    rows = [1, 2]
    keep.put("k", rows, _done("a"))
    assert keep.get("k", rows) == _done("a")
    # Equal rows read again (a new list: the window cache was invalidated and refilled) miss.
    assert keep.get("k", [1, 2]) is None
    assert keep.get("other", rows) is None


def test_the_keep_is_bounded_by_bytes_least_recently_used_first() -> None:
    keep = RenderedKeep(max_bytes=10, max_entry_bytes=6)
    a, b, c = [1], [2], [3]
    keep.put("a", a, _done("aaaa"))
    keep.put("b", b, _done("bbbb"))
    assert keep.get("a", a) is not None  # a is now the most recent
    keep.put("c", c, _done("cccc"))      # 12 bytes: the least recent (b) goes
    assert keep.get("b", b) is None
    assert keep.get("a", a) is not None and keep.get("c", c) is not None
    keep.put("big", [4], _done("x" * 7))  # over max_entry_bytes: not kept
    assert keep.get("big", [4]) is None and len(keep) == 2
    keep.put("a", a, _done("a"))  # replacing an entry frees its old size
    keep.put("d", [5], _done("dddd"))
    assert len(keep) == 3


def test_rendered_bodies_are_what_the_contract_shows() -> None:
    body = {"spaceship_id": 1, "units": "kWh",
            "data": [{"datetime": "2018-08-24T00:00:00Z", "value": 3.0}]}
    text, kind, _ = rendered(False, body, (), [], "data-1")
    # Byte for byte as CONTRACT.md section 5 shows the original API's answer.
    assert text == (b'{"spaceship_id": 1, "units": "kWh", "data": '
                    b'[{"datetime": "2018-08-24T00:00:00Z", "value": 3.0}]}')
    assert kind == "application/json" and json.loads(dumps(body)) == body
    csv_body, kind, name = rendered(True, {}, ("a",), [{"a": 0.5}], "energy-s1")
    assert csv_body == b"a\n0.5\n" and kind == "text/csv" and name == "energy-s1"
