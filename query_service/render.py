"""Answers as JSON, or as CSV when asked by ``format=csv`` or ``Accept: text/csv``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from query_service.energy import choice

FORMATS = ("json", "csv")


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type="application/json")


def wants_csv(request: web.Request) -> bool:
    """``format`` wins; without it, an Accept header naming text/csv (and not JSON first)."""
    fmt = choice(request.query, "format", FORMATS, "")
    if fmt:
        return fmt == "csv"
    accept = [part.split(";")[0].strip().lower()
              for part in request.headers.get("Accept", "").split(",")]
    if "text/csv" not in accept:
        return False
    return "application/json" not in accept or accept.index("text/csv") < accept.index(
        "application/json")


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """A header line and one line per row; None is an empty cell, floats keep full precision."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if row.get(c) is None else _cell(row[c]) for c in columns])
    return out.getvalue()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def respond(request: web.Request, body: Mapping[str, Any], columns: Sequence[str],
            rows: Iterable[Mapping[str, Any]], name: str) -> web.Response:
    """``body`` as JSON, or ``rows`` (the body's list) as CSV with ``columns``."""
    return response(rendered(wants_csv(request), body, columns, rows, name))


Rendered = tuple[str, str, str]  # text, content type, CSV file name ("" for JSON)


def rendered(as_csv: bool, body: Mapping[str, Any], columns: Sequence[str],
             rows: Iterable[Mapping[str, Any]], name: str) -> Rendered:
    """What :func:`respond` sends, as plain values (to keep for a repeated request)."""
    if as_csv:
        return csv_text(columns, rows), "text/csv", name
    return json.dumps(body), "application/json", ""


def response(parts: Rendered) -> web.Response:
    text, content_type, name = parts
    if content_type == "text/csv":
        return web.Response(text=text, content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'inline; filename="{name}.csv"'})
    return web.Response(text=text, content_type="application/json")
