#!/usr/bin/env python3
"""A notebook in cells (`# %%`, as VS Code, Spyder and Jupytext read them): find duplicates in a
demo folder, look at them in SQL, write the HTML report, and see what `move_to` would do.

    python examples/notebook.py [WORKDIR]

Run it as a script, or open it in an editor that knows cells and run them one at a time.
"""

# %% Setup: a demo folder of photos with copies, re-encodes, rotations and broken files
import subprocess
import sys
import tempfile
from pathlib import Path

import imgindex

work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp(prefix="imgindex-notebook-"))
photos = work / "demo-photos"
if not photos.exists():
    subprocess.run([sys.executable, str(Path(__file__).parent / "make_demo_photos.py"), str(photos),
                    "--originals", "12", "--size", "480"], check=True, capture_output=True)
index = imgindex.Index(work / "photos.db")

# %% Index the folder, then search it (both incremental on the next run)
scan = index.scan([photos])
print(f"{scan.added} images indexed, {scan.failed} could not be read, in {scan.duration:.1f} s")
found = index.search(similarity="similar")
print(f"{found.pairs} matching pairs in {found.groups} groups among {found.images} images")

# %% The groups, in SQL: index.db is a sqlite-utils Database
for row in index.db.query(
    "SELECT group_id, count(*) AS images, sum(size) - max(CASE WHEN is_keeper THEN size END) AS reclaimable"
    " FROM match_groups GROUP BY group_id ORDER BY reclaimable DESC LIMIT 5"
):
    print(row)

# %% Every image with its keeper's MSE and the rotation that matched
for row in index.db.query(
    "SELECT group_id, is_keeper, mse_to_keeper, rotation, path FROM match_groups ORDER BY group_id, is_keeper DESC"
    " LIMIT 8"
):
    print(f"{row['group_id']:>3} {'keep' if row['is_keeper'] else 'dup ':4} {row['mse_to_keeper'] or 0:7.3f} "
          f"{row['rotation'] or 0:>3} {Path(row['path']).name}")

# %% The report: open it in a browser to decide by looking (it changes nothing)
summary = index.report(work / "report.html", thumb_size=160)
print(f"report: {summary.output} ({summary.size_bytes / 1e6:.1f} MB), {summary.groups} groups, "
      f"{summary.bytes_reclaimable / 1e6:.1f} MB reclaimable")

# %% What move_to would do: a plan, nothing moved yet (index.apply(plan) would do it, journaled)
plan = index.plan_move_to(work / "duplicates")
print(f"would move {len(plan.actions)} files ({plan.bytes / 1e6:.1f} MB); left alone: {len(plan.skipped)}")
for action in plan.actions[:3]:
    print(f"  {Path(action.source).relative_to(photos)} -> {Path(action.destination).relative_to(work)}")
index.close()
