"""The energy report: one row per ship, one column per calendar period, totals and coverage.

Pure (pandas and openpyxl, no I/O but the bytes it returns): the query service's
``GET /v1/reports/energy`` and ``fleetctl report`` both feed it the per-(ship, meter) period
totals of :func:`query_service.calendar.period_totals` and write what it builds, so the table has
one definition.

- :func:`build` pivots records ``(ship, meter, period index, kWh, covered seconds)`` into a
  :class:`Report`: ``kwh`` and ``coverage`` frames (index: ship; columns: the periods, labelled
  with their local start, ``2025-03-01T00:00:00+01:00``). A period without data for a ship is
  missing (NaN; ``null`` in JSON, an empty cell in CSV and the spreadsheet), never a silent 0.
- Coverage is covered seconds over the period's real length (a month, a 23-hour day); for a ship
  with several meters, the mean of its meters' coverage, over the meters holding data anywhere in
  the report (:mod:`fleet.coverage`, the rule every endpoint uses: a complete period is 1). A row's
  coverage is over all its periods, a column's over all the report's ships.
- :meth:`Report.to_json`, :meth:`Report.to_csv` and :meth:`Report.to_xlsx` are the three formats
  (their shapes are in the README and the OpenAPI document).
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from fleet.calendar import US, CalendarError, Period, count_periods, local_iso
from fleet.coverage import ship_seconds

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# A worksheet has 16,384 columns: the ship column, the periods, Total and Coverage.
XLSX_MAX_PERIODS = 16_384 - 3
SHIP = "ship"
TOTAL = "total"
KWH_FORMAT = "#,##0.000"
COVERAGE_FORMAT = "0.0%"

Record = tuple[str, str, int, float, float]
"""(ship, meter, period index, kWh, covered seconds)."""


def _value(x: Any) -> float | None:
    value = float(x)
    return None if math.isnan(value) else value


def _repr(x: object) -> str:
    return repr(float(x))  # type: ignore[arg-type]  # pandas hands it the cells' floats


@dataclass(frozen=True, slots=True)
class Report:
    """The table. ``kwh``/``coverage``: one row per ship (sorted), one column per period."""

    every: str
    tz: ZoneInfo
    start_us: int
    end_us: int
    periods: list[Period]
    labels: list[str]
    kwh: pd.DataFrame
    coverage: pd.DataFrame
    meter: str | None = None
    truncated_before: int | None = None

    # --- totals ---------------------------------------------------------------------------------

    @property
    def _seconds(self) -> pd.Series:
        return pd.Series([p.length_us / US for p in self.periods], index=self.labels, dtype=float)

    def row_totals(self) -> pd.Series:
        """kWh per ship over the range (NaN for a ship with no data at all)."""
        return self.kwh.sum(axis=1, min_count=1)

    def row_coverage(self) -> pd.Series:
        covered = (self.coverage * self._seconds).sum(axis=1)
        return covered / self._seconds.sum() if self.periods else covered * 0.0

    def column_totals(self) -> pd.Series:
        """kWh per period over the ships (NaN for a period no ship has data in)."""
        return self.kwh.sum(axis=0, min_count=1)

    def column_coverage(self) -> pd.Series:
        if self.kwh.empty:
            return pd.Series(0.0, index=self.labels, dtype=float)
        return self.coverage.fillna(0.0).mean(axis=0)

    def grand_total(self) -> float | None:
        return _value(self.column_totals().sum(min_count=1))

    def grand_coverage(self) -> float:
        if self.kwh.empty or not self.periods:
            return 0.0
        return float(self.row_coverage().mean())

    # --- formats ----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """``periods``, ``rows`` (ship, kwh and coverage per period, total_kwh, coverage),
        ``totals`` (the same per period over the ships, and the grand total)."""
        row_kwh, row_cov = self.row_totals(), self.row_coverage()
        rows = [{"ship": ship,
                 "kwh": [_value(v) for v in self.kwh.loc[ship]],
                 "coverage": [_value(v) or 0.0 for v in self.coverage.loc[ship]],
                 "total_kwh": _value(row_kwh[ship]),
                 "coverage_total": float(row_cov[ship])} for ship in self.kwh.index]
        body: dict[str, Any] = {
            "unit": "kWh", "every": self.every, "tz": self.tz.key,
            "start": local_iso(self.start_us, ZoneInfo("UTC")),
            "end": local_iso(self.end_us, ZoneInfo("UTC")),
            "periods": [{"start": label, "end": local_iso(p.end_us, self.tz)}
                        for label, p in zip(self.labels, self.periods, strict=True)],
            "rows": rows,
            "totals": {
                "kwh": [_value(v) for v in self.column_totals()],
                "coverage": [float(v) for v in self.column_coverage()],
                "total_kwh": self.grand_total(),
                "coverage_total": self.grand_coverage(),
            },
        }
        if self.meter is not None:
            body["meter"] = self.meter
        if self.truncated_before is not None:
            body["truncated_before"] = local_iso(self.truncated_before, ZoneInfo("UTC"))
        return body

    def table(self) -> pd.DataFrame:
        """The kWh table with its totals: a ``total`` column, a ``coverage`` column (the row's),
        and a last row ``total`` (per period over the ships)."""
        out = self.kwh.copy()
        out[TOTAL] = self.row_totals()
        out["coverage"] = self.row_coverage()
        last = [*self.column_totals(), self.grand_total(), self.grand_coverage()]
        out.loc[TOTAL] = [math.nan if v is None else v for v in last]
        out.index.name = SHIP
        return out

    def to_csv(self) -> str:
        """One header line (``ship``, the periods' local start times, ``total``, ``coverage``,
        then ``coverage <period>`` per period); one line per ship; a last line ``total``."""
        out = self.table()
        cov = self.coverage.fillna(0.0)
        cov.loc[TOTAL] = self.column_coverage()
        cov.columns = [f"coverage {label}" for label in self.labels]
        both = pd.concat([out, cov], axis=1)
        # repr-precise floats, as the energy endpoints' CSV writes them.
        return both.to_csv(lineterminator="\n", float_format=_repr)

    def to_xlsx(self) -> bytes:
        """A workbook with two sheets, ``kWh`` and ``Coverage``: each an Excel table (a header
        row, the ships) with the totals in the row below it, the header frozen, numbers
        formatted."""
        buffer = io.BytesIO()
        with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
            energy = self.kwh.copy()
            energy["Total"] = self.row_totals()
            energy["Coverage"] = self.row_coverage()
            energy_totals = [*self.column_totals(), self.grand_total(), self.grand_coverage()]
            _sheet(writer, "kWh", "EnergyReport", energy, energy_totals,
                   [KWH_FORMAT] * (len(self.labels) + 1) + [COVERAGE_FORMAT])
            coverage = self.coverage.fillna(0.0)
            coverage["Total"] = self.row_coverage()
            _sheet(writer, "Coverage", "CoverageReport", coverage,
                   [*self.column_coverage(), self.grand_coverage()],
                   [COVERAGE_FORMAT] * (len(self.labels) + 1))
            info = writer.book.create_sheet("About")
            for row in self._about():
                info.append(row)
            info.column_dimensions["A"].width = 14
            info.column_dimensions["B"].width = 40
        return buffer.getvalue()

    def _about(self) -> list[list[str]]:
        rows = [["Report", "Energy per ship and period (kWh)"],
                ["Every", self.every], ["Time zone", self.tz.key],
                ["Start", local_iso(self.start_us, self.tz)],
                ["End", local_iso(self.end_us, self.tz)],
                ["Meter", self.meter or "all meters (sum)"],
                ["Coverage", "covered seconds / the period's real length"]]
        if self.truncated_before is not None:
            rows.append(["Truncated", "data before " + local_iso(self.truncated_before, self.tz)
                         + " is past the 15-minute parts' retention and not counted"])
        return rows


def _sheet(writer: pd.ExcelWriter, name: str, table_name: str, frame: pd.DataFrame,
           totals: Sequence[float | None], formats: Sequence[str]) -> None:
    from openpyxl.styles import Font  # noqa: PLC0415 - only spreadsheets need openpyxl
    from openpyxl.utils import get_column_letter  # noqa: PLC0415
    from openpyxl.worksheet.table import Table, TableStyleInfo  # noqa: PLC0415

    frame = frame.copy()
    frame.index.name = "Ship"
    frame.reset_index().to_excel(writer, sheet_name=name, index=False)
    ws = writer.sheets[name]
    n_rows, n_cols = len(frame), len(frame.columns) + 1
    last_col = get_column_letter(n_cols)
    # The table is the header row and the ships (at least one row, as Excel requires); the
    # totals sit in the row below it, so sorting or filtering the table leaves them out.
    ref = f"A1:{last_col}{max(n_rows, 1) + 1}"
    table = Table(displayName=table_name, ref=ref)
    table.tableStyleInfo = TableStyleInfo(name="TableStyleMedium2", showRowStripes=True)
    ws.add_table(table)
    total_row = max(n_rows, 1) + 2
    ws.cell(row=total_row, column=1, value="Total").font = Font(bold=True)
    for j, value in enumerate(totals, start=2):
        cell = ws.cell(row=total_row, column=j,
                       value=None if value is None or math.isnan(value) else float(value))
        cell.font = Font(bold=True)
    for j, number_format in enumerate(formats, start=2):
        for row in range(2, total_row + 1):
            ws.cell(row=row, column=j).number_format = number_format
        ws.column_dimensions[get_column_letter(j)].width = 26
    ws.column_dimensions["A"].width = max(12, min(64, 2 + max(
        (len(str(s)) for s in frame.index), default=0)))
    for cell in ws[1]:
        cell.font = Font(bold=True)
    ws.freeze_panes = "B2"


def check_xlsx_width(start_us: int, end_us: int, every: str, tz: ZoneInfo) -> None:
    """CalendarError("every") when the periods would not fit a worksheet's columns."""
    n = count_periods(start_us, end_us, every, tz)
    if n > XLSX_MAX_PERIODS:
        raise CalendarError("every", f"the range holds {n} periods of every={every}, more than "
                                     f"the {XLSX_MAX_PERIODS} columns a spreadsheet has room "
                                     "for: use a coarser every, a shorter range, or csv")


def build(records: Iterable[Record], periods: Sequence[Period], every: str, tz: ZoneInfo,
          start_us: int, end_us: int, *, ships: Sequence[str] | None = None,
          meter: str | None = None, truncated_before: int | None = None) -> Report:
    """The report from period totals. ``ships``: the rows (in that order, with or without data);
    default: every ship with data, sorted."""
    labels = [local_iso(p.start_us, tz) for p in periods]
    long = pd.DataFrame.from_records(
        list(records), columns=[SHIP, "meter", "period", "kwh", "seconds"])
    long = long.astype({SHIP: "object", "meter": "object", "period": "int64",
                        "kwh": "float64", "seconds": "float64"})
    columns = pd.RangeIndex(len(periods))
    if long.empty:
        kwh = seconds = pd.DataFrame(index=pd.Index([], dtype=object), columns=columns,
                                     dtype=float)
    else:
        kwh = long.pivot_table(index=SHIP, columns="period", values="kwh", aggfunc="sum")
        # A ship's covered seconds over its meters in the report (fleet.coverage).
        meters = long.groupby(SHIP)["meter"].transform("nunique")
        long["seconds"] = [ship_seconds(float(s), int(m))
                           for s, m in zip(long["seconds"], meters, strict=True)]
        seconds = long.pivot_table(index=SHIP, columns="period", values="seconds",
                                   aggfunc="sum")
    rows = sorted(kwh.index) if ships is None else list(dict.fromkeys(ships))
    kwh = kwh.reindex(index=rows, columns=columns).astype(float)
    seconds = seconds.reindex(index=rows, columns=columns).astype(float)
    lengths = pd.Series([p.length_us / US for p in periods], index=columns, dtype=float)
    coverage = seconds.div(lengths, axis=1).where(kwh.notna())
    for frame in (kwh, coverage):
        frame.columns = pd.Index(labels)
        frame.index = pd.Index(rows, name=SHIP, dtype=object)
        frame.columns.name = None
    return Report(every, tz, start_us, end_us, list(periods), labels, kwh, coverage,
                  meter=meter, truncated_before=truncated_before)
