"""Pure parts of the query service: gap spans, the anomaly rule, status payloads, tokens."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet.errors import AccountError
from fleet.tokens import TokenStore, TokenVerifier, ensure_dev_token
from query_service.analysis import anomalies, gaps, robust_scale
from query_service.db import WindowRow

Q = 900 * 1_000_000


def rows(values: list[float | None], seconds: list[float] | None = None) -> list[WindowRow]:
    return [WindowRow(i * Q, v, (seconds or [900.0] * len(values))[i])
            for i, v in enumerate(values) if v is not None]


def test_gaps_merge_consecutive_missing_and_partial() -> None:
    data = rows([1, None, 0.5, 1, None], [900, 0, 450, 900, 0])
    spans = gaps(data, 0, 5 * Q, Q)
    assert [(g.start_us // Q, g.end_us // Q, g.missing, g.partial) for g in spans] == [
        (1, 3, 1, 1), (4, 5, 1, 0)]
    assert spans[0].coverage == pytest.approx(450 / 1800)
    assert gaps(rows([1, 1]), 0, 2 * Q, Q) == []


def test_robust_scale_falls_back_when_mad_is_zero() -> None:
    assert robust_scale([1, 2, 3], 2) == pytest.approx(1.4826)
    assert robust_scale([1, 1, 1, 5], 1) == pytest.approx(1.2533 * 1.0)
    assert robust_scale([2, 2], 2) == pytest.approx(0.02)


def test_anomaly_rule_flags_outliers_not_partials() -> None:
    values: list[float | None] = [1.0, 1.2, 0.8, 1.1, 0.9] * 4 + [9.0, 1.0, 0.0]
    secs = [900.0] * 22 + [100.0]  # the last window is partial: a gap, never an anomaly
    found = anomalies(rows(values, secs), 0, 23 * Q, Q, 900.0, 96, 3.5)
    assert [(a.start_us // Q, round(a.median, 2)) for a in found] == [(20, 1.0)]
    assert found[0].score > 3.5
    assert anomalies(rows(values[:7]), 0, 7 * Q, Q, 900.0, 96, 3.5) == []  # < 8 of history


def test_tokens_hashed_revocable_and_reloaded(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    verifier = TokenVerifier(store.path)
    token = store.create("alice")
    assert token not in store.path.read_text()
    assert verifier.verify(token) == "alice"
    assert verifier.verify(token + "x") is None
    with pytest.raises(AccountError):
        store.create("alice")
    store.revoke("alice")
    assert verifier.verify(token) is None
    assert [t.name for t in store.list()] == []
    dev = ensure_dev_token(tmp_path)
    assert ensure_dev_token(tmp_path) == dev
    assert verifier.verify(dev) == "dev"
