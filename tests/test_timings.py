"""Where a scan's and a search's time went: measured by the processes doing the work, summed in
the report and kept in the scans and searches rows (what benchmarks/compare_difpy.py prints)."""

from __future__ import annotations

import json
from dataclasses import asdict, fields

import pytest

from imgindex import Index
from imgindex.types import ScanTimings, SearchTimings

from helpers import write_image

N = 48  # read by two worker processes (more than reader.INLINE_BELOW)


def stored(ix: Index, table: str) -> dict:
    return json.loads(ix.db.execute(f"SELECT timings FROM {table} ORDER BY id DESC LIMIT 1").fetchone()[0])


@pytest.mark.parametrize("processes", [1, 2])
def test_a_scan_reports_and_keeps_where_its_time_went(tmp_path, processes):
    for i in range(N):
        write_image(tmp_path / "photos" / f"p{i}.jpg", seed=i, size=(320, 240), quality=90)
    with Index(tmp_path / "index.db") as ix:
        report = ix.scan([tmp_path / "photos"], processes=processes)
        assert report.decoded == N and report.workers == (2 if processes == 2 else 0)
        t = report.timings
        # every file was hashed, decoded and given keys by the process that read it
        assert t.hash > 0 and t.decode > 0 and t.keys > 0 and t.write > 0 and t.walk > 0
        assert t.decode > t.hash  # a 320-px JPEG costs more to decode than its 10 KB to hash
        assert t.total >= t.walk + t.write  # this process's own wall time, within the scan's
        row = stored(ix, "scans")
        assert set(row) == {f.name for f in fields(ScanTimings)}
        assert row == pytest.approx({k: round(v, 4) for k, v in asdict(t).items()}, abs=1e-4)

        again = ix.scan([tmp_path / "photos"], processes=processes).timings  # nothing changed: nothing read
        assert (again.hash, again.decode, again.keys) == (0, 0, 0)
        assert stored(ix, "scans")["decode"] == 0


def test_a_search_reports_and_keeps_where_its_time_went(tmp_path):
    for i in range(N):
        write_image(tmp_path / "photos" / f"p{i}.jpg", seed=i % 40, size=(160, 120), quality=90)
    with Index(tmp_path / "index.db") as ix:
        ix.scan([tmp_path / "photos"], processes=1)
        report = ix.search(similarity="similar")
        t = report.timings
        assert report.pairs > 0 and t.pixels > 0 and t.signals > 0 and t.groups > 0
        assert t.total >= t.pixels + t.signals + t.groups
        row = stored(ix, "searches")
        assert set(row) == {f.name for f in fields(SearchTimings)}
        assert row == pytest.approx({k: round(v, 4) for k, v in asdict(t).items()}, abs=1e-4)
        pixels_only = ix.search(similarity="duplicates", full=True).timings
        assert pixels_only.signals < t.signals  # no tone, rank or trimmed pass ran
