"""The HTML report: one self-contained page of a search's groups, to decide by looking. It never acts.

Thumbnails are made from the original files and embedded (no server, no network: a
Content-Security-Policy forbids any fetch). Groups are kept as JSON in the page and drawn a page
at a time by a small inline script, with ``textContent`` only, so 10,000 groups stay responsive
and no file name can become markup. A threshold view shows each image's nearest neighbour, how
far it is, and the pairs just above the threshold.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from sqlite_utils import Database

from imgindex import compare
from imgindex.errors import ImgIndexError
from imgindex.progress import human_bytes
from imgindex.results import resolve_search_id, search_stats

GROUPS_PER_PAGE = 50
NEAR_MISSES = 50
HISTOGRAM_BINS = 30
THUMB_BATCH = 32
INLINE_THUMBS = 200  # fewer than this: no worker processes


@dataclass(frozen=True)
class ReportProgress:
    stage: str  # 'neighbours', 'thumbnails', 'writing'
    done: int
    total: int
    elapsed: float


@dataclass(frozen=True)
class ReportSummary:
    output: str
    search_id: int
    threshold: float
    groups: int
    groups_shown: int
    images: int
    bytes_reclaimable: int
    missing: int  # originals that could not be read for a thumbnail
    near_misses: int  # pairs above the threshold but within the histogram's range
    histogram_cap: float
    size_bytes: int
    duration: float
    next_commands: tuple[str, ...]


def histogram_cap(threshold: float) -> float:
    """How far the threshold view looks: far enough past the threshold to see where distinct photos start."""
    return max(30.0, 4.0 * threshold)


def write_report(
    db: Database,
    db_path: str,
    output: str | os.PathLike,
    *,
    limit_groups: int | None = None,
    thumb_size: int = 256,
    search_id: int | None = None,
    processes: int | None = None,
    progress: Callable[[ReportProgress], None] | None = None,
) -> ReportSummary:
    """Write the report of a search (the latest by default) to ``output``; see the module docstring."""
    started = time.monotonic()
    if limit_groups is not None and limit_groups < 1:
        raise ImgIndexError(f"limit_groups must be at least 1 (got {limit_groups}).")
    if not 16 <= thumb_size <= 2048:
        raise ImgIndexError(f"thumb_size must be between 16 and 2048 pixels (got {thumb_size}).")
    output = os.path.abspath(os.path.expanduser(os.fspath(output)))
    if os.path.isdir(output):
        raise ImgIndexError(f"{output} is a folder: give the report a file name, such as report.html.")
    if not os.path.isdir(os.path.dirname(output)):
        raise ImgIndexError(f"The folder {os.path.dirname(output)} does not exist: create it or choose another -o.")
    if os.path.lexists(output) and not is_report(output):
        raise ImgIndexError(f"{output} exists and is not an imgindex report: choose another -o "
                            "(imgindex replaces only its own reports, never your files).")
    search_id = resolve_search_id(db, search_id)
    stats = search_stats(db, search_id)
    threshold = float(stats["threshold"])

    def report(stage: str, done: int, total: int) -> None:
        if progress is not None:
            progress(ReportProgress(stage, done, total, time.monotonic() - started))

    groups = load_groups(db, search_id)
    shown = groups[:limit_groups] if limit_groups else groups
    cap = histogram_cap(threshold)
    report("neighbours", 0, 1)
    view = threshold_view(db, db_path, search_id, cap, processes=processes)
    report("neighbours", 1, 1)
    wanted: dict[str, list[str]] = {}
    for m in [m for g in shown for m in g.members] + [m for pair in view.near_misses for m in pair[:2]]:
        wanted.setdefault(m.content_hash, []).append(m.path)  # byte copies share one thumbnail
    thumbs = make_thumbnails(wanted, thumb_size, processes, lambda d, t: report("thumbnails", d, t))
    gone = {m.path for g in shown for m in g.members if not os.path.isfile(m.path)}
    commands = next_commands(db_path)
    page = render(stats, groups, shown, view, thumbs, commands, thumb_size, gone)
    report("writing", 0, 1)
    tmp = f"{output}.imgindex-partial-{os.getpid()}"
    try:
        with open(tmp, "x", encoding="utf-8") as fp:
            fp.write(page)
        os.replace(tmp, output)  # an earlier report (checked above) is ours to replace; never half-written
    finally:
        if os.path.lexists(tmp):
            os.unlink(tmp)  # our own partial file (a full disk, say)
    missing = sum(1 for g in shown for m in g.members if m.path in gone or thumbs[m.content_hash][0] is None)
    return ReportSummary(
        output=output, search_id=search_id, threshold=threshold, groups=len(groups), groups_shown=len(shown),
        images=sum(len(g.members) for g in groups), bytes_reclaimable=sum(g.reclaimable for g in groups),
        missing=missing, near_misses=view.near_miss_count, histogram_cap=cap, size_bytes=os.path.getsize(output),
        duration=time.monotonic() - started, next_commands=commands,
    )


# ---------------------------------------------------------------- data


@dataclass(frozen=True)
class Member:
    image_id: int
    path: str
    folder: str
    width: int
    height: int
    size: int
    format: str | None
    content_hash: str
    is_keeper: bool
    mse_to_keeper: float | None
    rotation: int | None
    mirrored: bool


@dataclass(frozen=True)
class Group:
    group_id: int
    members: tuple[Member, ...]  # keeper first

    @property
    def reclaimable(self) -> int:
        return sum(m.size for m in self.members if not m.is_keeper)


def load_groups(db: Database, search_id: int) -> list[Group]:
    """The search's groups, most bytes reclaimable first (ties: group id)."""
    rows = db.execute(
        "SELECT g.group_id, i.id, i.path, i.folder, i.width, i.height, i.size, i.format, i.content_hash, g.is_keeper,"
        " g.mse_to_keeper, g.rotation, g.mirrored FROM group_members g JOIN images i ON i.id = g.image_id"
        " WHERE g.search_id = ? ORDER BY g.group_id, g.is_keeper DESC, g.mse_to_keeper, i.path",
        [search_id],
    ).fetchall()
    members: dict[int, list[Member]] = {}
    for gid, *fields in rows:
        image_id, path, folder, w, h, size, fmt, digest, keeper, mse, rotation, mirrored = fields
        members.setdefault(gid, []).append(
            Member(image_id, path, folder, w, h, size, fmt, digest, bool(keeper), mse, rotation, bool(mirrored)))
    groups = [Group(gid, tuple(ms)) for gid, ms in members.items()]
    groups.sort(key=lambda g: (-g.reclaimable, g.group_id))
    return groups


@dataclass(frozen=True)
class ThresholdView:
    """Each image's nearest-neighbour MSE (within ``cap``) and the closest pairs above the threshold."""

    cap: float
    images: int
    nearest: np.ndarray  # MSE to the nearest neighbour of every image that has one within cap
    near_misses: tuple[tuple[Member, Member, float], ...]  # the closest, up to NEAR_MISSES
    near_miss_count: int


def threshold_view(db: Database, db_path: str, search_id: int, cap: float, *,
                   processes: int | None = None) -> ThresholdView:
    """Compare the search's images again with a wider threshold (nothing is written) to see past it."""
    ids, a, b, mse = compare.near_pairs(db, db_path, search_id, cap, processes=processes)
    best = np.full(len(ids), np.inf)
    where = np.searchsorted(ids, a), np.searchsorted(ids, b)
    np.minimum.at(best, where[0], mse)
    np.minimum.at(best, where[1], mse)
    matched = {(x, y) for x, y in db.execute("SELECT image_a, image_b FROM pairs WHERE search_id = ?", [search_id])}
    beyond = [k for k in np.argsort(mse, kind="stable").tolist() if (int(a[k]), int(b[k])) not in matched]
    chosen = beyond[:NEAR_MISSES]
    facts = _members(db, {int(a[k]) for k in chosen} | {int(b[k]) for k in chosen})
    near = tuple((facts[int(a[k])], facts[int(b[k])], float(mse[k])) for k in chosen)
    return ThresholdView(cap, len(ids), best[np.isfinite(best)], near, len(beyond))


def _members(db: Database, ids: set[int]) -> dict[int, Member]:
    rows = db.execute(
        "SELECT id, path, folder, width, height, size, format, content_hash FROM images"
        " WHERE id IN (SELECT value FROM json_each(?))",
        [json.dumps(sorted(ids))],
    ).fetchall()
    return {r[0]: Member(*r, is_keeper=False, mse_to_keeper=None, rotation=None, mirrored=False) for r in rows}


def make_thumbnails(wanted: dict[str, list[str]], size: int, processes: int | None,
                    progress: Callable[[int, int], None]) -> dict[str, tuple[str | None, str]]:
    """content hash -> (base64 JPEG, '') or (None, why not), one thumbnail per distinct content."""
    from imgindex.indexer import resolve_processes
    from imgindex.workers import WorkerPool

    items = sorted(wanted.items(), key=lambda kv: kv[1])
    batches = [items[k : k + THUMB_BATCH] for k in range(0, len(items), THUMB_BATCH)]
    out: dict[str, tuple[str | None, str]] = {}
    processes = resolve_processes(processes)
    if processes == 1 or len(items) < INLINE_THUMBS:
        for batch in batches:
            out.update(thumbnails(batch, size))
            progress(len(out), len(items))
        return out
    with WorkerPool(processes) as pool:
        queue = list(reversed(batches))
        while queue or pool.pending:
            while queue and pool.can_submit():
                pool.submit(f"{__name__}:thumbnails", queue.pop(), size)
            for outcome in pool.collect():
                if outcome.error is not None:
                    raise ImgIndexError(f"a thumbnail worker failed: {outcome.error}") from outcome.error
                out.update(outcome.value)
                progress(len(out), len(items))
    return out


def thumbnails(batch: list[tuple[str, list[str]]], size: int) -> dict[str, tuple[str | None, str]]:
    """(content hash, its paths) -> a base64 thumbnail from the first path that reads; runs in workers."""
    from imgindex.decode import thumbnail_jpeg

    out = {}
    for digest, paths in batch:
        out[digest] = (None, MISSING)
        for path in paths:
            try:
                out[digest] = (base64.b64encode(thumbnail_jpeg(path, size)).decode("ascii"), "")
                break
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - any unreadable original is shown as such, never a crash
                out[digest] = (None, f"cannot be shown: {type(exc).__name__}: {exc}")
    return out


MISSING = "missing: the original is no longer there"


GENERATOR = '<meta name="generator" content="imgindex report">'


def is_report(path: str) -> bool:
    """True for a regular file that an earlier ``imgindex report`` wrote (so it may be replaced)."""
    try:
        if not os.path.isfile(path) or os.path.islink(path):
            return False
        with open(path, "rb") as fp:
            return GENERATOR.encode() in fp.read(2048)
    except OSError:
        return False


def next_commands(db_path: str) -> tuple[str, ...]:
    db = shlex.quote(str(db_path))
    return (f"imgindex move-to DEST --db {db} --dry-run", f"imgindex delete --db {db} --dry-run")


# ---------------------------------------------------------------- page


def _text(value) -> str:
    """Any value as text that UTF-8 can carry (undecodable file-name bytes shown as \\udcXX)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _e(value) -> str:
    return html.escape(_text(value), quote=True)


def _json_for_script(data) -> str:
    """JSON that cannot end its <script> element early, whatever the file names say."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render(stats: dict, groups: list[Group], shown: list[Group], view: ThresholdView,
           thumbs: dict[str, tuple[str | None, str]], commands: tuple[str, ...], thumb_size: int,
           gone: set[str] = frozenset()) -> str:
    threshold = float(stats["threshold"])
    keys = {digest: k for k, digest in enumerate(sorted(d for d, (b, _) in thumbs.items() if b is not None))}
    data = {
        "perPage": GROUPS_PER_PAGE,
        "thumbs": [thumbs[d][0] for d in sorted(keys, key=keys.get)],
        "groups": [[g.group_id, g.reclaimable, [_member_row(m, keys, thumbs, gone) for m in g.members]]
                   for g in shown],
    }
    reclaimable = sum(g.reclaimable for g in groups)
    settings = ", ".join(f"{k}={'yes' if stats[k] else 'no'}" for k in ("rotate", "mirror", "same_dim", "in_folder"))
    limited = (f" The {len(shown):,} groups that free the most space are shown."
               if len(shown) < len(groups) else "")
    return PAGE.format(
        title=_e(f"imgindex report: search {stats['id']}"),
        css=CSS,
        thumb=int(thumb_size),
        total_groups=len(shown),
        summary=(f"<b>{len(groups):,}</b> groups, <b>{sum(len(g.members) for g in groups):,}</b> images, "
                 f"<b>{_e(human_bytes(reclaimable))}</b> reclaimable (everything but the keepers).{_e(limited)}"),
        details=_e(f"Search {stats['id']} ({stats['similarity']}, MSE <= {threshold:g}; {settings}), "
                   f"finished {stats['finished_at']}. Report written {datetime.now().isoformat(timespec='seconds')}."),
        commands="\n".join(f"<code>{_e(c)}</code>" for c in commands),
        histogram=histogram_svg(view, threshold),
        view_text=_view_text(view, threshold),
        near_misses=_near_misses_html(view, thumbs),
        data=_json_for_script(data),
        script=SCRIPT,
        generator=GENERATOR,
        # only this page's own script may run: even a name that slipped past escaping could not
        script_hash="sha256-" + base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode(),
    )


def _member_row(m: Member, keys: dict[str, int], thumbs, gone) -> list:
    """One image for the page's script; a file that is gone shows so, even if a byte copy gave a thumbnail."""
    here = m.path not in gone
    why = thumbs.get(m.content_hash, (None, "not made"))[1] if here else MISSING
    return [_text(m.path), _text(m.folder), m.width, m.height, m.size, m.format or "?", int(m.is_keeper),
            m.mse_to_keeper, m.rotation, int(m.mirrored), keys.get(m.content_hash) if here else None, why]


def histogram_svg(view: ThresholdView, threshold: float) -> str:
    """Counts of nearest-neighbour MSE in bins from 0 to the cap, a bar for 'farther', the threshold line."""
    counts, edges = histogram(view)
    beyond = view.images - int(counts.sum())
    width, height, left, bottom = 760, 220, 44, 36
    bar_w = (width - left - 60) / HISTOGRAM_BINS
    top = max(int(counts.max(initial=0)), beyond, 1)
    scale = (height - bottom - 12) / top
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="histogram" role="img"'
             f' aria-label="nearest-neighbour MSE histogram">']
    for k, count in enumerate(counts.tolist()):
        x, h = left + k * bar_w, count * scale
        inside = edges[k + 1] <= threshold or (threshold == 0 and k == 0)
        parts.append(f'<rect class="{"match" if inside else "bar"}" x="{x:.1f}" y="{height - bottom - h:.1f}"'
                     f' width="{bar_w - 1:.1f}" height="{h:.1f}"><title>{count:,} images: nearest neighbour at MSE '
                     f'{edges[k]:.3g} to {edges[k + 1]:.3g}</title></rect>')
    x = left + HISTOGRAM_BINS * bar_w + 8
    parts.append(f'<rect class="far" x="{x:.1f}" y="{height - bottom - beyond * scale:.1f}" width="{bar_w * 1.5:.1f}"'
                 f' height="{beyond * scale:.1f}"><title>{beyond:,} images: no neighbour within MSE {view.cap:g}'
                 f'</title></rect>')
    parts.append(f'<text x="{x:.1f}" y="{height - bottom + 14}" class="tick">&gt;{view.cap:g}</text>')
    for k in range(0, HISTOGRAM_BINS, 5):
        parts.append(f'<text x="{left + k * bar_w:.1f}" y="{height - bottom + 14}" class="tick">{edges[k]:.3g}</text>')
    tx = left + min(threshold / view.cap, 1.0) * HISTOGRAM_BINS * bar_w
    parts.append(f'<line class="threshold" x1="{tx:.1f}" x2="{tx:.1f}" y1="6" y2="{height - bottom}"/>')
    parts.append(f'<text class="threshold-label" x="{tx + 4:.1f}" y="16">threshold {threshold:g}</text>')
    parts.append(f'<text x="{left}" y="{height - 4}" class="axis">MSE to the nearest other image (0-255 scale)'
                 f'</text><text x="2" y="16" class="axis">{top:,}</text></svg>')
    return "".join(parts)


def histogram(view: ThresholdView) -> tuple[np.ndarray, np.ndarray]:
    """(counts per bin, bin edges) of nearest-neighbour MSE over [0, cap]; each bin is [lo, hi) but the last."""
    edges = np.linspace(0.0, view.cap, HISTOGRAM_BINS + 1)
    counts, _ = np.histogram(view.nearest, bins=edges)
    return counts, edges


def _view_text(view: ThresholdView, threshold: float) -> str:
    within = int((view.nearest <= threshold).sum())
    above = int(len(view.nearest) - within)
    return _e(f"Of {view.images:,} images searched, {within:,} have a neighbour at or under the threshold "
              f"(they are in groups), {above:,} have their nearest neighbour just above it (MSE up to {view.cap:g}), "
              f"and {view.images - len(view.nearest):,} have none that close: distinct pictures.")


def _near_misses_html(view: ThresholdView, thumbs) -> str:
    if not view.near_misses:
        return "<p>No pair of images lies between the threshold and " + _e(f"{view.cap:g}") + ".</p>"
    rows = []
    for a, b, mse in view.near_misses:
        cells = "".join(f"<div class=\"nm-img\">{_thumb_html(m, thumbs)}<div class=\"path\">{_e(m.path)}</div></div>"
                        for m in (a, b))
        rows.append(f"<div class=\"near-miss\"><div class=\"mse\">MSE {mse:.3f}</div>{cells}</div>")
    more = (f"<p>{view.near_miss_count - len(view.near_misses):,} more pairs up to MSE {view.cap:g} are not shown.</p>"
            if view.near_miss_count > len(view.near_misses) else "")
    return "".join(rows) + more


def _thumb_html(m: Member, thumbs) -> str:
    image, why = thumbs.get(m.content_hash, (None, "not made"))
    if image is None:
        return f'<div class="missing">{_e(why)}</div>'
    return f'<img class="thumb" alt="{_e(os.path.basename(m.path))}" src="data:image/jpeg;base64,{image}">'


CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:16px 24px;color:#1d2327;background:#f6f7f7}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:28px 0 8px}
.summary{font-size:16px;margin:8px 0}.details{color:#50575e}
.commands code{display:block;background:#1d2327;color:#f0f0f1;padding:6px 10px;margin:4px 0;border-radius:4px;
 user-select:all;overflow-x:auto}
.safe{color:#50575e}
.histogram{width:100%;max-width:760px;background:#fff;border:1px solid #dcdcde;border-radius:4px}
.histogram .bar{fill:#8c8f94}.histogram .match{fill:#2271b1}.histogram .far{fill:#c3c4c7}
.histogram .threshold{stroke:#d63638;stroke-width:2;stroke-dasharray:4 3}
.histogram .threshold-label{fill:#d63638;font-size:12px}.histogram .tick,.histogram .axis{font-size:11px;fill:#50575e}
.group{background:#fff;border:1px solid #dcdcde;border-radius:6px;margin:12px 0;padding:10px 12px;
 content-visibility:auto;contain-intrinsic-size:auto 340px}
.group-head{color:#50575e;margin-bottom:8px}.group-head b{color:#1d2327}
.members{display:flex;flex-wrap:wrap;gap:12px}
.member{width:calc(var(--thumb) * 1px + 12px);border:2px solid #dcdcde;border-radius:6px;padding:6px;
 overflow-wrap:anywhere;font-size:12px}
.member.keeper{border-color:#00a32a;background:#edfaef}
.badge{display:inline-block;font-weight:600;font-size:11px;padding:1px 6px;border-radius:10px;background:#dcdcde}
.keeper .badge{background:#00a32a;color:#fff}
.thumb{display:block;max-width:100%;max-height:calc(var(--thumb) * 1px);margin:0 auto 6px}
.missing{display:flex;align-items:center;justify-content:center;text-align:center;height:120px;
 background:#fcf0f1;color:#8a2424;border:1px dashed #d63638;margin-bottom:6px;padding:6px}
.path{color:#50575e;font-family:ui-monospace,monospace;font-size:11px;white-space:pre-wrap}
.name{color:#1d2327;font-family:ui-monospace,monospace;font-size:12px;font-weight:600;white-space:pre-wrap}
.facts{color:#50575e}
.pager{display:flex;gap:8px;align-items:center;margin:12px 0}.pager button{font-size:14px;padding:4px 12px}
.near-miss{display:flex;gap:12px;align-items:flex-start;background:#fff;border:1px solid #dcdcde;
 border-radius:6px;margin:8px 0;padding:8px}
.near-miss .mse{width:90px;font-weight:600}.nm-img{width:calc(var(--thumb) * 0.6px + 12px)}
.nm-img .thumb{max-height:calc(var(--thumb) * 0.6px)}
"""

SCRIPT = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var groups = data.groups, per = data.perPage, page = 0;
  var pages = Math.max(1, Math.ceil(groups.length / per));
  var list = document.getElementById("groups");
  var ROT = {0: "", 90: "turned 90\u00b0", 180: "turned 180\u00b0", 270: "turned 270\u00b0"};
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function size(n) {
    var units = ["B", "KB", "MB", "GB"], u = 0;
    while (n >= 1000 && u < units.length - 1) { n /= 1000; u++; }
    return (u ? n.toFixed(1) : n) + " " + units[u];
  }
  function member(m) {
    var path = m[0], folder = m[1], w = m[2], h = m[3], bytes = m[4], fmt = m[5], keeper = m[6],
        mse = m[7], rot = m[8], mirrored = m[9], thumb = m[10], why = m[11];
    var box = el("div", keeper ? "member keeper" : "member");
    if (thumb !== null) {
      var img = el("img", "thumb");
      img.alt = path.split("/").pop();
      img.src = "data:image/jpeg;base64," + data.thumbs[thumb];
      box.appendChild(img);
    } else {
      box.appendChild(el("div", "missing", why));
    }
    var how = keeper ? "keeper" : "MSE " + (mse === null ? "?" : mse.toFixed(3));
    var turn = [ROT[rot] || "", mirrored ? "mirrored" : ""].filter(Boolean).join(", ");
    box.appendChild(el("span", "badge", how + (turn ? " \u00b7 " + turn : "")));
    box.appendChild(el("div", "facts", w + "\u00d7" + h + " \u00b7 " + size(bytes) + " \u00b7 " + fmt));
    box.appendChild(el("div", "name", path.slice(folder.length).replace(/^\//, "")));
    box.appendChild(el("div", "path", folder + "/"));
    box.title = path;
    return box;
  }
  function show(p) {
    page = Math.min(Math.max(p, 0), pages - 1);
    list.textContent = "";
    groups.slice(page * per, (page + 1) * per).forEach(function (g, k) {
      var box = el("section", "group");
      box.dataset.groupId = g[0];
      var head = el("div", "group-head");
      head.appendChild(el("b", "", "Group " + (page * per + k + 1)));
      head.appendChild(document.createTextNode(" \u00b7 " + g[2].length + " images \u00b7 " + size(g[1]) +
                                               " reclaimable"));
      box.appendChild(head);
      var row = el("div", "members");
      g[2].forEach(function (m) { row.appendChild(member(m)); });
      box.appendChild(row);
      list.appendChild(box);
    });
    document.querySelectorAll(".page-label").forEach(function (e) {
      e.textContent = "Page " + (page + 1) + " of " + pages + " (" + groups.length + " groups)";
    });
    document.querySelectorAll("button.prev").forEach(function (b) { b.disabled = page === 0; });
    document.querySelectorAll("button.next").forEach(function (b) { b.disabled = page >= pages - 1; });
    document.body.dataset.page = page;
  }
  document.querySelectorAll("button.prev").forEach(function (b) {
    b.addEventListener("click", function () { show(page - 1); window.scrollTo(0, list.offsetTop - 60); });
  });
  document.querySelectorAll("button.next").forEach(function (b) {
    b.addEventListener("click", function () { show(page + 1); window.scrollTo(0, list.offsetTop - 60); });
  });
  document.body.dataset.pages = pages;
  show(0);
})();
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{generator}
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src '{script_hash}'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style>
</head>
<body style="--thumb:{thumb}" data-total-groups="{total_groups}">
<h1>Duplicate and similar images</h1>
<p class="summary">{summary}</p>
<p class="details">{details}</p>
<p class="safe">This page only shows. Nothing has been moved or deleted. To act on the lower-quality images
(every one but the keeper of each group, marked in green), look at the plan first:</p>
<div class="commands">{commands}</div>
<h2>Where duplicates end: each image's nearest neighbour</h2>
{histogram}
<p>{view_text}</p>
<h2>Near misses: the closest pairs just above the threshold</h2>
{near_misses}
<h2>Groups, most space reclaimable first</h2>
<noscript><p>The groups are drawn by a small script in this page; allow scripts to see them.</p></noscript>
<div class="pager"><button class="prev" type="button">&larr; Previous</button><span class="page-label"></span>
<button class="next" type="button">Next &rarr;</button></div>
<div id="groups"></div>
<div class="pager"><button class="prev" type="button">&larr; Previous</button><span class="page-label"></span>
<button class="next" type="button">Next &rarr;</button></div>
<script type="application/json" id="report-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
