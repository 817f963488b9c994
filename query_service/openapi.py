"""The OpenAPI 3 document of the query service, served at ``/openapi.json``.

Kept true by a schemathesis run against a real stack (tests/integration/test_api_openapi.py).
"""

from __future__ import annotations

import copy
from typing import Any

from query_service import analysis
from query_service import meters as _meters

_ERROR = {"$ref": "#/components/schemas/Error"}
_TIME = {"type": "string", "description": "UTC, ISO 8601 with Z", "example": "2018-08-24T00:00:00Z"}
_NTIME = {"type": ["string", "null"], "description": "UTC, ISO 8601 with Z"}
_NUM = {"type": "number"}
_NNUM = {"type": ["number", "null"]}


def _param(name: str, description: str, schema: dict[str, Any], *, required: bool = False,
           where: str = "query") -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "description": description,
            "schema": schema}


_SHIP = _param("id", "Ship id: 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'.",
               {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}, required=True,
               where="path")
_START = _param("start", "Range start (inclusive), UTC: 2018-08-24T00:00:00Z or the original "
                "service's 2018-08-24T00-00-00Z.", {"type": "string", "format": "date-time"},
                required=True)
_END = _param("end", "Range end (exclusive), UTC, after start.",
              {"type": "string", "format": "date-time"}, required=True)
_EVERY = _param("every", "Window size; windows are aligned to the epoch (UTC).",
                {"type": "string", "enum": ["15m", "1h", "1d"], "default": "15m"})
_LABEL = _param("label", "Stamp each window with its start or its end (04:00-04:15 as 04:15).",
                {"type": "string", "enum": ["start", "end"], "default": "start"})
_FILL = _param("fill", "none: only windows holding data; null: every window, empty ones with "
               "null kWh; zero: empty ones with 0.",
               {"type": "string", "enum": ["none", "null", "zero"], "default": "none"})
_FORMAT = _param("format", "json (default) or csv; `Accept: text/csv` asks for CSV too.",
                 {"type": "string", "enum": ["json", "csv"]})
_RANGE = [_START, _END, _EVERY, _LABEL, _FILL, _FORMAT]
_CAL_EVERY = _param(
    "every", "Window size: 15m and 1h are aligned to UTC; 1d, 1w (ISO weeks from Monday), 1mo "
    "and 1y begin at local midnight in tz (a day across a daylight-saving change lasts 23 or 25 "
    "hours; coverage is covered seconds over its real length).",
    {"type": "string", "enum": ["15m", "1h", "1d", "1w", "1mo", "1y"], "default": "15m"})
_TZ = _param("tz", "IANA time zone (default UTC) of the calendar periods and of the window times, "
             "written with their local offset (2025-03-30T00:00:00+01:00). A zone whose offset "
             "in the range is not a multiple of 15 minutes is a 400.",
             {"type": "string", "default": "UTC", "example": "Europe/Oslo"})
_METER = _param("meter", "One meter only (default: the sum over the ship's meters).",
                {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,32}$"})
_BY = _param("by", "by=meter: one series per meter, {\"meters\": {\"main\": [windows]}} in "
             "place of windows.", {"type": "string", "enum": ["meter"]})
_CALENDAR = [_START, _END, _CAL_EVERY, _TZ, _LABEL, _FILL, _METER, _FORMAT]
_TRUNCATED = {"type": "string", "description": "Present when the range reaches before what the "
              "15-minute parts still keep ([influxdb] retention) and part of the answer needed "
              "them: data before this instant is not counted."}

_WINDOW = {"type": "object", "required": ["time", "kwh", "coverage"], "properties": {
    "time": {"type": "string", "description": "The window's start (label=end: its end), ISO "
             "8601: UTC with Z, or with the local offset of tz (2025-03-30T00:00:00+01:00)"},
    "kwh": _NNUM,
    "coverage": {"type": "number", "description": "covered seconds / the window's real length "
                 "in seconds (a 23- or 25-hour local day counts as such), 0 to 1; for the sum "
                 "over a ship's meters, the mean of its meters' coverage (over the meters with "
                 "data anywhere in the range: one complete and one empty meter give 0.5)"}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "A missing or bad parameter (the message names it), start >= end, or more "
                 "windows than http.max_windows (the message suggests a coarser every).",
            401: "No token, or a bad or revoked one (Authorization: Bearer <token>).",
            404: "Nothing was ever stored for this ship.",
            502: "The database refused the query.",
            503: "The database (or the broker) is unavailable; try again later."}
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": _ERROR}}}
            for c in codes}


def _ok(description: str, schema: dict[str, Any], csv: bool = True) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": schema}}
    if csv:
        content["text/csv"] = {"schema": {"type": "string"}}
    return {"200": {"description": description, "content": content}}


def _read(summary: str, description: str, params: list[dict[str, Any]], schema: dict[str, Any],
          *, not_found: bool = False, tag: str = "energy") -> dict[str, Any]:
    codes = (400, 401, 404, 502, 503) if not_found else (400, 401, 502, 503)
    return {"get": {"summary": summary, "description": description, "tags": [tag],
                    "parameters": params, "responses": {**_ok(summary, schema), **_errors(*codes)}}}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


_ANOMALY_RULE = (analysis.__doc__ or "").split("Anomalies,", 1)[-1].strip()

_SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Fleet energy telemetry: query service",
        "version": "1.0.0",
        "description": (
            "15-minute kWh series per ship and fleet-wide, gaps, anomalies, and HTTP ingest. "
            "Read endpoints need `Authorization: Bearer <token>` (`fleetctl token create --name "
            "N`); /healthz, /openapi.json and the dashboard are open; POST /data takes the "
            "ship's own MQTT credentials (HTTP Basic). Every error is JSON `{\"error\": ...}`."),
    },
    "components": {
        "securitySchemes": {
            "token": {"type": "http", "scheme": "bearer"},
            "ship": {"type": "http", "scheme": "basic",
                     "description": "The ship's MQTT username (its id) and password."},
        },
        "schemas": {
            "Error": _obj(["error"], error={"type": "string"}),
            "Refused": _obj(["error", "reasons"], error={"type": "string"}, reasons={
                "type": "array", "items": _obj(["reason", "detail"], index={"type": "integer"},
                                               reason={"type": "string"},
                                               detail={"type": "string"})}),
            "Window": _WINDOW,
        },
    },
    "security": [{"token": []}],
    "paths": {
        "/data": {
            **_read(
                "Original API: 15-minute kWh of one ship",
                "Windows holding data in [start, end), as the original Spaceship Power Service "
                "answered.",
                [_param("spaceship_id", "Ship id.",
                        {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}, required=True),
                 _START, _END, _FORMAT],
                _obj(["spaceship_id", "units", "data"],
                     spaceship_id={"type": ["integer", "string"]},
                     units={"type": "string", "const": "kWh"},
                     data={"type": "array", "items": _obj(["datetime", "value"],
                                                          datetime=_TIME, value=_NUM)}),
                not_found=True),
            "post": {
                "summary": "Ingest readings over HTTP (published on the ship's MQTT topic)",
                "description": (
                    "The body is the MQTT payload (CONTRACT section 3). It is validated with the "
                    "bridge's own code, then published as the ship (its credentials, its "
                    "fleet/ships/<username>/readings topic) at QoS 1; 202 comes after the "
                    "broker's PUBACK. A spaceship_id naming another ship is refused (400)."),
                "tags": ["ingest"],
                "security": [{"ship": []}],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["units", "data"], "properties": {
                        "spaceship_id": {"type": ["integer", "string"]},
                        "units": {"type": "string", "example": "kWh"},
                        "interval": {"type": ["string", "number"]},
                        "batch_id": {"type": "string", "minLength": 1, "maxLength": 64},
                        "data": {"type": "array", "items": _obj(
                            ["datetime", "value"], datetime={"type": "string"},
                            value={"type": ["number", "string"]})}}}}}},
                "responses": {
                    "202": {"description": "Published; the broker acknowledged it.",
                            "content": {"application/json": {"schema": _obj(
                                ["ship", "topic", "status", "accepted", "rejected"],
                                ship={"type": "string"}, topic={"type": "string"},
                                status={"type": "string"}, accepted={"type": "integer"},
                                batch_id={"type": "string"},
                                rejected={"type": "array", "items": {"type": "object"}})}}},
                    "400": {"description": "Refused, nothing published; every reason listed.",
                            "content": {"application/json": {
                                "schema": {"$ref": "#/components/schemas/Refused"}}}},
                    "401": {"description": "No Basic credentials, or the broker refused them.",
                            "content": {"application/json": {"schema": _ERROR}}},
                    "403": {"description": "The broker's ACL refused the publish (reason 135).",
                            "content": {"application/json": {"schema": _ERROR}}},
                    "413": {"description": "Larger than ingest.max_payload_bytes.",
                            "content": {"application/json": {"schema": _ERROR}}},
                    "502": {"description": "The broker refused the message.",
                            "content": {"application/json": {"schema": _ERROR}}},
                    "503": {"description": "The broker is unavailable.",
                            "content": {"application/json": {"schema": _ERROR}}},
                },
            },
        },
        "/v1/ships": _read(
            "Every ship seen",
            "Ships with stored data or a status message: presence (online, offline, unknown: no "
            "status seen), the end of the last stored reading, the last stored 15-minute "
            "window. With start and end, each ship's kWh in the range too (every, label and "
            "fill are accepted and do not change this answer).",
            [{**_START, "required": False}, {**_END, "required": False}, _EVERY, _LABEL, _FILL,
             _FORMAT],
            _obj(["ships"], start=_TIME, end=_TIME, ships={"type": "array", "items": _obj(
                ["ship", "presence", "presence_since", "last_reading", "last_window"],
                ship={"type": "string"},
                presence={"type": "string", "enum": ["online", "offline", "unknown"]},
                presence_since=_NTIME, last_reading=_NTIME, last_window=_NTIME, kwh=_NNUM)}),
            tag="ships"),
        "/v1/ships/{id}/energy": _read(
            "One ship's kWh per window",
            "CONTRACT section 5. A known ship with no data in range answers 200 with no "
            "windows.",
            [_SHIP, *_CALENDAR, _BY],
            _obj(["ship", "unit", "every", "label", "start", "end"],
                 ship={"type": "string"}, unit={"type": "string"}, every={"type": "string"},
                 tz={"type": "string"}, meter={"type": "string"},
                 label={"type": "string"}, start=_TIME, end=_TIME,
                 truncated_before=_TRUNCATED,
                 windows={"type": "array", "items": _WINDOW},
                 meters={"type": "object", "additionalProperties": {
                     "type": "array", "items": _WINDOW}}),
            not_found=True, tag="ships"),
        "/v1/ships/{id}/gaps": _read(
            "Missing and partial windows, merged into spans",
            "Every window of `every` in [start, end) with coverage below 1, consecutive ones "
            "merged; each span is cut to the range and says how many windows were missing "
            "(no data) or partial. label and fill do not apply (spans carry both ends).",
            [_SHIP, *_RANGE],
            _obj(["ship", "every", "start", "end", "coverage", "gaps"], ship={"type": "string"},
                 every={"type": "string"}, label={"type": "string"}, start=_TIME, end=_TIME,
                 coverage=_NUM, gaps={"type": "array", "items": _obj(
                     ["start", "end", "windows", "missing", "partial", "coverage"],
                     start=_TIME, end=_TIME, windows={"type": "integer"},
                     missing={"type": "integer"}, partial={"type": "integer"},
                     coverage=_NUM)}),
            not_found=True, tag="ships"),
        "/v1/ships/{id}/meters": _read(
            "The ship's meters, their kind and newest stored data",
            (_meters.__doc__ or "").split("\n\n", 1)[-1].strip(), [_SHIP],
            _obj(["ship", "meters"], ship={"type": "string"}, meters={"type": "array", "items": _obj(
                ["meter", "kind", "last_reading"], meter={"type": "string"},
                kind={"type": "string", "enum": ["interval", "total"]},
                last_reading=_obj(["time"], time=_TIME, kwh=_NUM, seconds=_NUM,
                                  register_kwh=_NUM))}),
            not_found=True, tag="ships"),
        "/v1/ships/{id}/anomalies": _read(
            "Windows whose energy is an outlier against the ship's own recent history",
            "The rule: " + _ANOMALY_RULE + " fill does not apply.",
            [_SHIP, *_RANGE,
             _param("history", "Trailing windows forming each window's history (default: 96 "
                    "for 15m, 168 for 1h, 28 for 1d); they count against http.max_windows.",
                    {"type": "integer", "minimum": analysis.MIN_HISTORY, "maximum": 10000}),
             _param("threshold", "Smallest |score| reported.",
                    {"type": "number", "minimum": 0.5, "maximum": 1000,
                     "default": analysis.DEFAULT_THRESHOLD})],
            _obj(["ship", "every", "start", "end", "rule", "anomalies"], ship={"type": "string"},
                 unit={"type": "string"}, every={"type": "string"}, label={"type": "string"},
                 start=_TIME, end=_TIME, rule={"type": "object"},
                 anomalies={"type": "array", "items": _obj(
                     ["time", "kwh", "median", "scale", "score", "direction"], time=_TIME,
                     kwh=_NUM, median=_NUM, scale=_NUM, score=_NUM,
                     direction={"type": "string", "enum": ["high", "low"]})}),
            not_found=True, tag="ships"),
        "/v1/fleet/energy": _read(
            "The fleet's kWh per window",
            "Per window: the fleet's total kWh, the number of ships with data in it, the mean "
            "per reporting ship, and their mean coverage (the mean over those ships of each ship's "
            "coverage, as for one ship). Calendar periods, tz and meter as for "
            "one ship.",
            list(_CALENDAR),
            _obj(["every", "label", "start", "end", "windows"], every={"type": "string"},
                 tz={"type": "string"}, meter={"type": "string"},
                 truncated_before=_TRUNCATED,
                 label={"type": "string"}, fill={"type": "string"}, unit={"type": "string"},
                 start=_TIME, end=_TIME, windows={"type": "array", "items": _obj(
                     ["time", "kwh", "ships", "mean_kwh", "coverage"], time=_TIME, kwh=_NNUM,
                     ships={"type": "integer"}, mean_kwh=_NNUM, coverage=_NUM)}),
            tag="fleet"),
        "/v1/fleet/top": _read(
            "The ships with the most kWh in the range",
            "Ranked by kWh in [start, end), ties by id. With an explicit every, each ship "
            "carries its windows (label and fill apply to them).",
            [_param("count", "How many ships.", {"type": "integer", "minimum": 1,
                                                 "maximum": 1000, "default": 10}), *_CALENDAR],
            _obj(["start", "end", "count", "ships"], start=_TIME, end=_TIME,
                 every={"type": "string"}, label={"type": "string"}, unit={"type": "string"},
                 tz={"type": "string"}, meter={"type": "string"},
                 count={"type": "integer"}, ships={"type": "array", "items": _obj(
                     ["rank", "ship", "kwh", "coverage"], rank={"type": "integer"},
                     ship={"type": "string"}, kwh=_NUM, coverage=_NUM,
                     windows={"type": "array", "items": _WINDOW})}),
            tag="fleet"),
        "/v1/reports/energy": {"get": {
            "summary": "Energy report: one row per ship, one column per calendar period",
            "description": (
                "CONTRACT section 5. kWh per ship and period (every, tz as for the energy "
                "endpoints; the default zone is the fleet's [query] timezone), totals per ship "
                "and per period, and coverage (covered seconds over the period's real length; "
                "for several meters, the mean of the ship's meters' coverage, as on the energy "
                "endpoints). A period without data is null (an empty cell), never "
                "0. format=json (below), csv (one header line: ship, the periods' local start "
                "times, total, coverage, then 'coverage <period>' per period; one line per ship; "
                "a last line 'total') or xlsx (sheets kWh and Coverage, each an Excel table "
                "with a header row and the ships, the totals in the row below, and About)."),
            "tags": ["reports"],
            "parameters": [
                _START, _END,
                {**_CAL_EVERY, "schema": {**_CAL_EVERY["schema"], "default": "1mo"}},
                {**_TZ, "description": "IANA time zone of the periods (default: the fleet's "
                 "[query] timezone). A zone whose offset in the range is not a multiple of 15 "
                 "minutes is a 400.", "schema": {"type": "string", "example": "Europe/Oslo"}},
                _param("ship", "Only these ships (repeat the parameter or give a comma list); "
                       "default: every ship with data in the range. A ship never seen is a 404.",
                       {"type": "array", "items": {"type": "string",
                                                   "pattern": "^[A-Za-z0-9_,-]{1,64}$"}}),
                _METER,
                _param("format", "json (default), csv or xlsx; `Accept: text/csv` or the "
                       "spreadsheet type ask for those too.",
                       {"type": "string", "enum": ["json", "csv", "xlsx"]})],
            "responses": {
                "200": {"description": "The report", "content": {
                    "application/json": {"schema": _obj(
                        ["unit", "every", "tz", "start", "end", "periods", "rows", "totals"],
                        unit={"type": "string"}, every={"type": "string"},
                        tz={"type": "string"}, start=_TIME, end=_TIME,
                        meter={"type": "string"}, truncated_before=_TRUNCATED,
                        periods={"type": "array", "items": _obj(
                            ["start", "end"], start={"type": "string"},
                            end={"type": "string"})},
                        rows={"type": "array", "items": _obj(
                            ["ship", "kwh", "coverage", "total_kwh", "coverage_total"],
                            ship={"type": "string"},
                            kwh={"type": "array", "items": _NNUM},
                            coverage={"type": "array", "items": _NUM},
                            total_kwh=_NNUM, coverage_total=_NUM)},
                        totals=_obj(["kwh", "coverage", "total_kwh", "coverage_total"],
                                    kwh={"type": "array", "items": _NNUM},
                                    coverage={"type": "array", "items": _NUM},
                                    total_kwh=_NNUM, coverage_total=_NUM))},
                    "text/csv": {"schema": {"type": "string"}},
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                        "schema": {"type": "string", "format": "binary"}}}},
                **_errors(400, 401, 404, 502, 503)}}},
        "/v1/alerts": {"get": {
            "summary": "Alerts: the active ones, or their history",
            "description": "The alert service's states (CONTRACT section 8), from its transitions "
                           "in InfluxDB's alert_events. state=active (default): each ship and "
                           "rule whose latest state is pending or firing. state=all: every "
                           "transition in [start, end) (default: the last 24 hours), oldest "
                           "first. The same states are retained on MQTT fleet/alerts/<ship>/<rule>.",
            "tags": ["alerts"],
            "parameters": [
                _param("state", "active or all (the history).",
                       {"type": "string", "enum": ["active", "all"], "default": "active"}),
                _param("ship", "Only this ship.",
                       {"type": "string", "pattern": "^[A-Za-z0-9_-]{1,64}$"}),
                _param("start", "History start (inclusive), UTC; state=all only (default: 24 "
                       "hours before end).",
                       {"type": "string", "format": "date-time"}),
                _param("end", "History end (exclusive), UTC; state=all only.",
                       {"type": "string", "format": "date-time"})],
            "responses": {**_ok("The alerts", _obj(
                ["state", "alerts"], state={"type": "string"}, start=_TIME, end=_TIME,
                alerts={"type": "array", "items": _obj(
                    ["ship", "rule", "state", "since", "detail"], ship={"type": "string"},
                    rule={"type": "string"},
                    state={"type": "string", "enum": ["pending", "firing", "resolved"]},
                    since=_TIME, detail={"type": "string"}, kind={"type": "string"},
                    severity={"type": "string"}, meter={"type": ["string", "null"]})}),
                csv=False), **_errors(400, 401, 502, 503)}}},
        "/healthz": {"get": {
            "summary": "Health: 200 when InfluxDB and the broker answer", "tags": ["service"],
            "security": [],
            "responses": {code: {"description": text, "content": {"application/json": {
                "schema": _obj(["status", "influxdb", "broker"], status={"type": "string"},
                               influxdb={"type": "string"}, broker={"type": "string"})}}}
                for code, text in (("200", "healthy"), ("503", "a dependency is down"))}}},
        "/metrics": {"get": {
            "summary": "Prometheus metrics (needs a token like the read endpoints)",
            "tags": ["service"],
            "responses": {"200": {"description": "text exposition format",
                                  "content": {"text/plain": {"schema": {"type": "string"}}}},
                          **_errors(401)}}},
        "/openapi.json": {"get": {
            "summary": "This document", "tags": ["service"], "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {
                                      "schema": {"type": "object"}}}}}}},
        "/": {"get": {
            "summary": "The dashboard page (asks for a token)", "tags": ["dashboard"],
            "security": [],
            "responses": {"200": {"description": "HTML",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    },
}


def spec() -> dict[str, Any]:
    """A copy of the document (callers may not change the module's)."""
    return copy.deepcopy(_SPEC)


def query_parameters() -> dict[tuple[str, str], frozenset[str]]:
    """(path, METHOD) -> the query parameters the document lists, for every operation but the
    dashboard page (browsers and bookmarks add their own)."""
    out: dict[tuple[str, str], frozenset[str]] = {}
    for path, operations in spec()["paths"].items():
        if path == "/":
            continue
        for method, operation in operations.items():
            out[(path, method.upper())] = frozenset(
                p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
    return out
