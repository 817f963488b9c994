"""Answers as JSON, or as CSV when asked by ``format=csv`` or ``Accept: text/csv``."""

from __future__ import annotations

import csv
import io
import json
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

from aiohttp import web

from query_service.energy import choice

FORMATS = ("json", "csv")


def dumps(body: Any) -> bytes:
    """JSON as bytes, as json.dumps writes it (``"value": 3.0``: the original API's bytes, which
    clients may match as text); a repeated answer is not rendered again (:class:`RenderedKeep`)."""
    return json.dumps(body).encode()


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json",
                        charset="utf-8")


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


Rendered = tuple[bytes, str, str]  # body, content type, CSV file name ("" for JSON)


def rendered(as_csv: bool, body: Mapping[str, Any], columns: Sequence[str],
             rows: Iterable[Mapping[str, Any]], name: str) -> Rendered:
    """What :func:`respond` sends, as plain values (to keep for a repeated request)."""
    if as_csv:
        return csv_text(columns, rows).encode(), "text/csv", name
    return dumps(body), "application/json", ""


def response(parts: Rendered) -> web.Response:
    body, content_type, name = parts
    if content_type == "text/csv":
        return web.Response(body=body, content_type="text/csv", charset="utf-8",
                            headers={"Content-Disposition": f'inline; filename="{name}.csv"'})
    return web.Response(body=body, content_type="application/json", charset="utf-8")


class RenderedKeep:
    """Rendered answers of the window cache's rows, so that a repeated request is not rendered
    again: an entry is served only for the very list of rows it was rendered from (the window
    cache hands out the same list until the bridge's energy notice drops it, and a new read makes
    a new list), so it can never be staler than the rows themselves. Least recently used first
    beyond ``max_bytes``; answers over ``max_entry_bytes`` are not kept. One event loop uses it:
    no lock."""

    def __init__(self, max_bytes: int = 32 << 20, max_entry_bytes: int = 1 << 20) -> None:
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self._entries: OrderedDict[Hashable, tuple[object, Rendered]] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable, rows: object) -> Rendered | None:
        found = self._entries.get(key)
        if found is None or found[0] is not rows:
            return None
        self._entries.move_to_end(key)
        return found[1]

    def put(self, key: Hashable, rows: object, done: Rendered) -> None:
        size = len(done[0])
        if size > self.max_entry_bytes:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= len(old[1][0])
        self._entries[key] = (rows, done)
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, (_, gone) = self._entries.popitem(last=False)
            self._bytes -= len(gone[0])
