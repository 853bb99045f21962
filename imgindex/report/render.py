"""The page: a report's data rendered through the Jinja2 templates in ``templates/``, as one HTML string.

Groups travel as JSON in the page and are drawn a page at a time by the page's own script, with
``textContent`` only, so 10,000 groups stay responsive and no file name can become markup. The
rest (summary, histogram, near misses) is rendered here, where autoescape makes every file name
text. A Content-Security-Policy forbids any fetch (no server, no network) and lets only this
page's own script run, pinned by the sha256 of exactly the text that lands in the page.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from imgindex.humanize import human_bytes
from imgindex.report.data import HISTOGRAM_BINS, ReportGroup, ReportMember, ThresholdView, histogram
from imgindex.report.thumbs import MISSING, Thumb

GROUPS_PER_PAGE = 50
GENERATOR = Markup('<meta name="generator" content="imgindex report">')  # how write.is_report knows its own pages
KEPT_LABELS = {"rule": "keeper", "pinned": "pinned keeper", "reference": "reference folder"}  # on each kept member
KEPT_WORDS = {"rule": "keeper rule", "pinned": "pinned", "reference": "reference"}  # in a group's "2 kept: ..."


def _text(value) -> str:
    """Any value as text that UTF-8 can carry (undecodable file-name bytes shown as \\udcXX)."""
    return str(value).encode("utf-8", "backslashreplace").decode("utf-8")


def _finalize(value):
    """Every value the templates print passes here first: a non-UTF-8 file name must not break the page."""
    return _text(value) if isinstance(value, str) and not isinstance(value, Markup) else value


def _json_for_script(data) -> Markup:
    """JSON that cannot end its <script> element early, whatever the file names say."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


_templates = Environment(
    loader=PackageLoader("imgindex.report", "templates"),
    autoescape=select_autoescape(("html",)),
    undefined=StrictUndefined,
    finalize=_finalize,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_templates.filters["fmt"] = format  # {{ n|fmt(',') }}: Python's format specs, as the CLI prints numbers


def render(stats: dict, groups: list[ReportGroup], shown: list[ReportGroup], view: ThresholdView,
           thumbs: dict[str, Thumb], commands: tuple[str, ...], *, thumb_size: int,
           gone: set[str] = frozenset()) -> str:
    """The page of ``shown`` (of all ``groups``), the threshold view and the next commands."""
    threshold = float(stats["threshold"])
    keys = {digest: k for k, digest in enumerate(sorted(d for d, (b, _) in thumbs.items() if b is not None))}
    data = {
        "perPage": GROUPS_PER_PAGE,
        "thumbs": [thumbs[d][0] for d in sorted(keys, key=keys.get)],
        "groups": [[g.group_id, g.reclaimable, [_member_row(m, keys, thumbs, gone) for m in g.members]]
                   for g in shown],
        "keptNotes": {str(g.group_id): note for g in shown if (note := kept_note(g))},  # group id -> '2 kept: ...'
    }
    within = int((view.nearest <= threshold).sum())
    script = _templates.get_template("report.js").render()
    return _templates.get_template("report.html").render(
        generator=GENERATOR,
        # only this page's own script may run: even a name that slipped past escaping could not
        script_hash="sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode(),
        script=Markup(script),
        stats=stats,
        threshold=threshold,
        settings=", ".join(f"{k}={'yes' if stats[k] else 'no'}" for k in ("rotate", "mirror", "same_dim", "in_folder")),
        written=datetime.now().isoformat(timespec="seconds"),
        thumb_size=int(thumb_size),
        groups=len(groups),
        shown=len(shown),
        images=sum(len(g.members) for g in groups),
        reclaimable=human_bytes(sum(g.reclaimable for g in groups)),
        also_kept=sum(len(g.kept) - 1 for g in groups),
        commands=commands,
        chart=chart(view, threshold),
        view=view,
        nearest={"within": within, "above": len(view.nearest) - within, "none": view.images - len(view.nearest)},
        pairs=[(mse, (_picture(a, thumbs), _picture(b, thumbs))) for a, b, mse in view.near_misses],
        data=_json_for_script(data),
    )


def _member_row(m: ReportMember, keys: dict[str, int], thumbs: dict[str, Thumb], gone: set[str]) -> list:
    """One image for the page's script; a file that is gone shows so, even if a byte copy gave a thumbnail."""
    here = m.path not in gone
    why = thumbs.get(m.content_hash, (None, "not made"))[1] if here else MISSING
    return [_text(m.path), _text(m.folder), m.width, m.height, m.size, m.format or "?", int(m.is_keeper),
            m.mse_to_keeper, m.rotation, int(m.mirrored), keys.get(m.content_hash) if here else None, why,
            kept_label(m), m.matched_by]


def kept_label(m: ReportMember) -> str | None:
    """What a kept member's badge says ('keeper', 'pinned keeper', 'reference folder'); None: it is acted on."""
    if not m.kept:
        return None
    return KEPT_LABELS.get(m.keep_reason or "rule", f"kept ({m.keep_reason})")


def kept_note(group: ReportGroup) -> str:
    """'2 kept: pinned, reference' when a group keeps more than its keeper; '' when it keeps only that one."""
    kept = group.kept
    if len(kept) < 2:
        return ""
    why = Counter(KEPT_WORDS.get(m.keep_reason or "rule", m.keep_reason) for m in kept)  # in member order
    return f"{len(kept)} kept: " + ", ".join(word if n == 1 else f"{n} {word}" for word, n in why.items())


@dataclass(frozen=True)
class Picture:
    """One image of a near miss: its thumbnail (or why there is none) above its path."""

    path: str
    name: str
    image: str | None
    why: str


def _picture(m: ReportMember, thumbs: dict[str, Thumb]) -> Picture:
    image, why = thumbs.get(m.content_hash, (None, "not made"))
    return Picture(m.path, os.path.basename(m.path), image, why)


@dataclass(frozen=True)
class Bar:
    css: str  # 'match' (at or under the threshold), 'bar' (above it), 'far' (no neighbour within the cap)
    x: float
    y: float
    width: float
    height: float
    count: int
    lo: float
    hi: float


@dataclass(frozen=True)
class Chart:
    """The histogram's geometry in SVG units; the template draws it."""

    width: int
    height: int
    left: int
    baseline: int  # y of the bars' foot
    bars: tuple[Bar, ...]
    far: Bar
    ticks: tuple[tuple[float, float], ...]  # (x, MSE) under every fifth bar
    threshold_x: float
    threshold: float
    cap: float
    top: int  # the count at the top of the scale


def chart(view: ThresholdView, threshold: float, *, width: int = 760, height: int = 220) -> Chart:
    """Counts of nearest-neighbour MSE in bins from 0 to the cap, a bar for 'farther', the threshold line."""
    counts, edges = histogram(view)
    beyond = view.images - int(counts.sum())
    left, baseline = 44, height - 36
    bar_w = (width - left - 60) / HISTOGRAM_BINS
    top = max(int(counts.max(initial=0)), beyond, 1)
    scale = (baseline - 12) / top
    bars = []
    for k, count in enumerate(counts.tolist()):
        inside = edges[k + 1] <= threshold or (threshold == 0 and k == 0)
        bars.append(Bar("match" if inside else "bar", left + k * bar_w, baseline - count * scale, bar_w - 1,
                        count * scale, count, float(edges[k]), float(edges[k + 1])))
    far_x = left + HISTOGRAM_BINS * bar_w + 8
    far = Bar("far", far_x, baseline - beyond * scale, bar_w * 1.5, beyond * scale, beyond, view.cap, view.cap)
    return Chart(
        width, height, left, baseline, tuple(bars), far,
        ticks=tuple((left + k * bar_w, float(edges[k])) for k in range(0, HISTOGRAM_BINS, 5)),
        threshold_x=left + min(threshold / view.cap, 1.0) * HISTOGRAM_BINS * bar_w,
        threshold=threshold, cap=view.cap, top=top,
    )
