"""One sort of InfluxDB's HTTP answers for the writer (fleet/store.py) and the reader
(query_service/db.py)."""

from __future__ import annotations

import pytest

from fleet.influxanswers import Kind, error_text, retry_after_seconds, sort_answer


@pytest.mark.parametrize(("status", "body", "kind"), [
    (204, b"", Kind.OK),
    (200, b'{"results": []}', Kind.OK),
    (413, b'{"error": "Request Entity Too Large"}', Kind.TOO_LARGE),
    (429, b"", Kind.UNAVAILABLE),
    (500, b'{"error": "timeout"}', Kind.UNAVAILABLE),
    (503, b"", Kind.UNAVAILABLE),
    (401, b'{"error": "authorization failed"}', Kind.CREDENTIALS),
    (403, b"", Kind.CREDENTIALS),
    (404, b'{"error": "database not found: \\"x\\""}', Kind.MISSING),
    (404, b'{"code": "not found", "message": "database not found: x"}', Kind.MISSING),
    (400, b'{"error": "retention policy not found: rp"}', Kind.MISSING),
    (404, b"404 page not found", Kind.NOT_FOUND),
    (400, b'{"error": "partial write: field type conflict"}', Kind.REFUSED),
    (400, b"unable to parse", Kind.REFUSED),
])
def test_sorting(status: int, body: bytes, kind: Kind) -> None:
    answer = sort_answer(status, body)
    assert (answer.status, answer.kind) == (status, kind)


def test_success_is_given_by_the_caller() -> None:
    assert sort_answer(200, b"{}", ok=(204,)).kind is Kind.REFUSED
    assert sort_answer(204, b"", ok=(200,)).kind is Kind.REFUSED


def test_error_body_and_retry_after() -> None:
    answer = sort_answer(429, b'{"error": "slow down"}', "2.5")
    assert (answer.error, answer.retry_after) == ("slow down", 2.5)
    assert error_text(b'{"message": "from 2.x"}') == "from 2.x"
    assert error_text(b"x" * 1000) == "x" * 300
    assert error_text(b"[1, 2]") == "[1, 2]"
    assert [retry_after_seconds(v) for v in (None, "", "0", "7", "-1", "Wed, 21 Oct 2015")] == [
        None, None, 0.0, 7.0, None, None]
