"""The dashboard in headless Chromium (Debian's ``chromium``) against a real stack: the page loads
with data, shows a ship's chart with its gaps and anomalies, and a screenshot is kept under
test-artifacts/ (gitignored)."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from fleet.schema import Part
from tests.conftest import Stack, unique_ship
from tests.integration.api_helpers import QUARTER_US, get, write_parts

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        pytest.fail("chromium is not installed: run `make test`, which installs it")
    profile = tmp_path / f"profile-{time.monotonic_ns()}"
    args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", f"--user-data-dir={profile}",
            "--window-size=1280,900", "--virtual-time-budget=8000", *extra, url]
    return subprocess.run(args, capture_output=True, text=True, timeout=90, check=False)


@pytest.fixture(scope="module")
def ship(stack: Stack) -> str:
    """A day of 15-minute data up to now: a gap of 2 hours, a partial window and a spike; a second
    meter, shore, in the last 8 hours."""
    name = unique_ship("dash")
    now = time.time_ns() // 1000
    first = now - now % QUARTER_US - 96 * QUARTER_US
    parts = []
    for i in range(96):
        t = first + i * QUARTER_US
        if 40 <= i < 48:
            continue
        kwh = 30.0 if i == 70 else 2.0 + 0.3 * ((i * 7) % 5)
        parts.append(Part(name, t, kwh / 2 if i == 60 else kwh, 450.0 if i == 60 else 900.0))
        parts.append(Part(name, t, 1.0, 900.0, meter="shore"))
    write_parts(stack, parts)
    return name


def test_ship_page_renders_chart_gaps_and_anomalies(stack: Stack, ship: str,
                                                    tmp_path: Path) -> None:
    assert get(stack, f"/v1/ships/{ship}/anomalies", {
        "start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z", "every": "1d"},
    ).status == 200
    url = f"http://127.0.0.1:{stack.cfg.http.port}/#token={stack.token}&ship={ship}"
    done = chromium(url, tmp_path, "--dump-dom")
    dom = done.stdout
    assert 'data-loaded="ship"' in dom, (done.stderr[-2000:], dom[-3000:])
    assert f"Ship {ship}" in dom
    assert "<canvas" in dom  # uPlot drew the chart
    gap_rows = re.search(r'<table id="gaps">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert gap_rows and gap_rows.group(1).count("<tr>") >= 2  # the 2-hour gap, the partial
    anomaly_rows = re.search(r'<table id="anomalies">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert anomaly_rows and "31.00" in anomaly_rows.group(1)  # the spike, 30 + 1 on shore

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-ship.png"
    shot.unlink(missing_ok=True)
    done = chromium(url, tmp_path, f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000, done.stderr[-2000:]


def test_ship_chart_stacks_meters_with_the_period_and_zone_picked(stack: Stack, ship: str,
                                                                  tmp_path: Path) -> None:
    url = (f"http://127.0.0.1:{stack.cfg.http.port}/#token={stack.token}&ship={ship}"
           "&every=1h&tz=Europe/Oslo")
    done = chromium(url, tmp_path, "--dump-dom")
    dom = done.stdout
    assert 'data-loaded="ship"' in dom, (done.stderr[-2000:], dom[-3000:])
    assert 'data-every="1h"' in dom and 'data-tz="Europe/Oslo"' in dom
    assert 'data-meters="main,shore"' in dom  # one stacked series per meter
    assert f"Ship {ship}, energy per hour" in dom
    legend = re.findall(r'<div class="u-label">([^<]*)</div>', dom)
    assert legend[1:3] == ["main", "shore"], legend
    # The pickers offer every period and the fleet's zone, marked as such.
    assert re.search(r'<select id="every">.*value="1mo".*value="1y"', dom, re.S)
    assert f'<option value="{stack.cfg.query.timezone}">{stack.cfg.query.timezone} (fleet)' in dom
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-meters.png"
    shot.unlink(missing_ok=True)
    chromium(url, tmp_path, f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000


def test_overview_lists_ships_and_top_users(stack: Stack, ship: str, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{stack.cfg.http.port}/#token={stack.token}"
    dom = chromium(url, tmp_path, "--dump-dom").stdout
    assert 'data-loaded="overview"' in dom, dom[-3000:]
    # Without a choice, the fleet's zone and 15-minute windows.
    assert f'data-tz="{stack.cfg.query.timezone}"' in dom and 'data-every="15m"' in dom
    daily = chromium(url + "&every=1d&tz=Asia/Kolkata", tmp_path, "--dump-dom").stdout
    assert 'data-loaded="overview"' in daily and 'data-tz="Asia/Kolkata"' in daily, daily[-3000:]
    assert "Fleet, last 90 days" in daily and "kWh per day (Asia/Kolkata)" in daily
    assert f'href="#ship={ship}"' in dom  # in the ships table and the top list
    assert re.search(r'<ol id="top">.*?' + re.escape(ship), dom, re.S)
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "dashboard-overview.png"
    shot.unlink(missing_ok=True)
    chromium(url, tmp_path, f"--screenshot={shot}")
    assert shot.is_file() and shot.stat().st_size > 20_000


def test_page_without_a_token_asks_for_one(stack: Stack, tmp_path: Path) -> None:
    dom = chromium(f"http://127.0.0.1:{stack.cfg.http.port}/", tmp_path, "--dump-dom").stdout
    assert '<form id="login">' in dom  # shown: the hidden attribute is gone
    bad = chromium(f"http://127.0.0.1:{stack.cfg.http.port}/#token=fleet_revoked", tmp_path,
                   "--dump-dom").stdout
    assert "The token was refused" in bad
