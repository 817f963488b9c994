"""What the query rules read: InfluxDB directly for last readings, usage and coverage (exact sums
of the stored parts), the query service's anomalies endpoint for anomaly scores.

Each ``*_conditions`` function is pure: it turns rows into one :class:`Condition` per ship.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from typing import Any

from alerts.engine import Condition, span_text
from fleet.config import AlertRule, Config
from fleet.errors import StoreError
from fleet.schema import (
    EVERY_SECONDS,
    FIELD_KWH,
    FIELD_SECONDS,
    TAG_METER,
    TAG_SHIP,
    meter_name,
    quote_ident,
    quote_string,
    source,
)
from fleet.store import InfluxStore
from fleet.timeutil import US, WINDOW_US, floor_to, format_datetime

log = logging.getLogger(__name__)


def usage_range(rule: AlertRule, now_us: int) -> tuple[int, int]:
    """The previous complete window and the current one: [start, end)."""
    step = EVERY_SECONDS[rule.every] * US
    current = floor_to(now_us, step)
    return current - step, current + step


def usage_conditions(rule: AlertRule, rows: dict[str, list[tuple[int, float]]],
                     ships: Iterable[str], now_us: int) -> dict[str, Condition]:
    """Firing while the current or the previous window's kWh (all meters) is above ``above``."""
    out: dict[str, Condition] = {}
    for ship in set(ships) | set(rows):
        over = [(t, kwh) for t, kwh in rows.get(ship, []) if kwh > rule.above]
        if over:
            t, kwh = max(over, key=lambda w: w[1])
            out[ship] = Condition(True, now_us, f"{kwh:.6g} kWh in the {rule.every} window from "
                                                f"{format_datetime(t)} (above {rule.above:g})")
        else:
            out[ship] = Condition(False, now_us, f"every {rule.every} window at or below "
                                                 f"{rule.above:g} kWh")
    return out


def coverage_range(rule: AlertRule, now_us: int) -> tuple[int, int]:
    """The complete 15-minute windows of the last ``over``: [start, end)."""
    end = floor_to(now_us, WINDOW_US)
    return end - int(rule.over_seconds * US), end


def coverage_conditions(rule: AlertRule, rows: dict[str, dict[str, float]],
                        ships: Iterable[str], now_us: int) -> dict[str, Condition]:
    """Firing while a meter's covered seconds over ``over`` fall below ``below`` of it; a known
    ship without any data in the range has coverage 0 (its meter main)."""
    out: dict[str, Condition] = {}
    for ship in set(ships) | set(rows):
        meters = rows.get(ship) or {"main": 0.0}
        meter, seconds = min(meters.items(), key=lambda m: (m[1], m[0]))
        share = min(1.0, seconds / rule.over_seconds)
        text = (f"meter {meter} covered {share:.1%} of the last {span_text(rule.over_seconds)} "
                f"({'below' if share < rule.below else 'at or above'} {rule.below:.0%})")
        out[ship] = Condition(share < rule.below, now_us, text,
                              meter if len(meters) > 1 or meter != "main" else "main")
    return out


def anomaly_condition(rule: AlertRule, doc: dict[str, Any], now_us: int) -> Condition:
    """Firing while a window of the recent range scores above ``above`` (high usage)."""
    found = [a for a in doc.get("anomalies", [])
             if isinstance(a, dict) and float(a.get("score", 0)) > rule.above]
    if found:
        worst = max(found, key=lambda a: float(a["score"]))
        return Condition(True, now_us, f"{float(worst['kwh']):.6g} kWh in the {rule.every} window "
                                       f"from {worst['time']}: score {float(worst['score']):.3g} "
                                       f"(median {float(worst['median']):.6g}; above "
                                       f"{rule.above:g})")
    return Condition(False, now_us, f"no {rule.every} window scored above {rule.above:g}")


class Sources:
    """Synchronous readers for the evaluation thread."""

    def __init__(self, cfg: Config, api_token: str) -> None:
        self.cfg = cfg
        self.store = InfluxStore(cfg.influxdb)
        self._source = source(cfg.influxdb.database, cfg.influxdb.retention_policy)
        self._query_url = (cfg.alerts.query_url
                           or f"http://{cfg.http.host}:{cfg.http.port}").rstrip("/")
        self._token = api_token

    def close(self) -> None:
        self.store.close()

    def _series(self, statement: str) -> list[dict[str, Any]]:
        try:
            results = self.store.query(statement)
        except StoreError as exc:
            if "database not found" in str(exc):
                return []
            raise
        return [s for r in results for s in r.get("series", [])]

    def last_readings(self, now_us: int) -> dict[str, int]:
        """Each ship's last stored reading: the start of its latest part, at most ``now``.

        The start, not the end: a reading's part may reach into the future (a reading of now
        for the next minute), and its end would make a ship that just went quiet look alive."""
        out: dict[str, int] = {}
        statement = (f"SELECT last({quote_ident(FIELD_SECONDS)}) AS seconds FROM {self._source} "
                     f"GROUP BY {quote_ident(TAG_SHIP)}")
        for s in self._series(statement):
            ship = (s.get("tags") or {}).get(TAG_SHIP, "")
            for t, _seconds in s.get("values", []):
                if ship:
                    out[ship] = min(now_us, int(t))
        return out

    def usage(self, rule: AlertRule, now_us: int) -> dict[str, list[tuple[int, float]]]:
        start, end = usage_range(rule, now_us)
        statement = (f"SELECT sum({quote_ident(FIELD_KWH)}) AS kwh FROM {self._source} "
                     f"WHERE time >= {start}u AND time < {end}u{self._ships(rule)} "
                     f"GROUP BY time({rule.every}), {quote_ident(TAG_SHIP)} fill(none)")
        out: dict[str, list[tuple[int, float]]] = {}
        for s in self._series(statement):
            ship = (s.get("tags") or {}).get(TAG_SHIP, "")
            out[ship] = [(int(t), float(k)) for t, k in s.get("values", []) if k is not None]
        return out

    def coverage(self, rule: AlertRule, now_us: int) -> dict[str, dict[str, float]]:
        start, end = coverage_range(rule, now_us)
        statement = (f"SELECT sum({quote_ident(FIELD_SECONDS)}) AS seconds FROM {self._source} "
                     f"WHERE time >= {start}u AND time < {end}u{self._ships(rule)} "
                     f"GROUP BY {quote_ident(TAG_SHIP)}, {quote_ident(TAG_METER)}")
        out: dict[str, dict[str, float]] = {}
        for s in self._series(statement):
            tags = s.get("tags") or {}
            for _t, seconds in s.get("values", []):
                out.setdefault(tags.get(TAG_SHIP, ""), {})[meter_name(tags.get(TAG_METER))] = (
                    float(seconds or 0.0))
        return out

    def anomalies(self, rule: AlertRule, ship: str, now_us: int) -> dict[str, Any]:
        step = EVERY_SECONDS[rule.every] * US
        end = floor_to(now_us, step) + step
        start = floor_to(end - int(rule.over_seconds * US), step)
        query = urllib.parse.urlencode({
            "start": format_datetime(start), "end": format_datetime(end), "every": rule.every,
            "threshold": str(max(0.5, min(1000.0, rule.above)))})
        url = f"{self._query_url}/v1/ships/{urllib.parse.quote(ship)}/anomalies?{query}"
        req = urllib.request.Request(url, headers={  # noqa: S310 - our configured URL
            "Authorization": f"Bearer {self._token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - configured URL
                doc: dict[str, Any] = json.loads(resp.read())
                return doc
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return {"anomalies": []}
            raise StoreError(f"the query service answered {exc.code} for {url}") from exc
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise StoreError(f"the query service at {self._query_url} did not answer: {exc}") from exc

    @staticmethod
    def _ships(rule: AlertRule) -> str:
        if not rule.ships:
            return ""
        return " AND (" + " OR ".join(f"{quote_ident(TAG_SHIP)} = {quote_string(s)}"
                                      for s in rule.ships) + ")"
