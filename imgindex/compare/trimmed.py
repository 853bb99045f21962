"""A search's trimmed pass: pictures framed by uniform borders (letterbox bars, mats) against the
rest, by tone, the borders cut away.

Flows in: the search's scope, which images are new and which are in reference folders, in_folder
buckets (not same_dim: a framed copy never has the dimensions of its picture), orientations and
the tone threshold. The trimmed tensors were made at decode time (``scan.borders.content_box``)
and kept in ``trimmed_tensors``; an image without a row there was indexed before borders were
looked for (``unchecked``). Flows out: ``tone.ToneFound``, the pairs lower id first, with the best
tone score over (trimmed, whole), (whole, trimmed) and (trimmed, trimmed), and the pixel SSD of
the stored tensors in that orientation (the pairs table's ``mse``).

Every bound is the tone pass's (``tone.Points``, then the block sums in each orientation), on
the trimmed tensors' tones: no pair within the threshold is lost.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import numpy as np

from imgindex.db.queries import load_tensors
from imgindex.scan.borders import TRIM
from imgindex.compare import signals, tone
from imgindex.compare.plan import Scope, _buckets

if TYPE_CHECKING:
    from sqlite_utils import Database


def bordered(db: Database, px_size: int) -> np.ndarray:
    """Ids of the images with a trimmed tensor of this recipe and size, ascending."""
    return np.fromiter((r[0] for r in db.execute(
        "SELECT image_id FROM trimmed_tensors WHERE recipe = ? AND px_size = ? AND tensor IS NOT NULL ORDER BY image_id",
        [TRIM, px_size])), dtype=np.int64)


def unchecked(db: Database, ids: np.ndarray) -> int:
    """How many of ``ids`` were indexed before borders were looked for (no row of this recipe)."""
    checked = np.fromiter((r[0] for r in db.execute("SELECT image_id FROM trimmed_tensors WHERE recipe = ?", [TRIM])),
                          dtype=np.int64)
    return int((~np.isin(ids, checked)).sum())


def load_trimmed(db: Database, ids: np.ndarray, px_size: int) -> tuple[np.ndarray, np.ndarray]:
    """The trimmed tensors of ``ids`` (which have one), in that order: (k, px, px, 3) uint8, and the
    size of the picture inside the borders (k, 2)."""
    rows = {r[0]: r[1:] for r in db.execute(
        "SELECT image_id, tensor, inner_width, inner_height FROM trimmed_tensors WHERE image_id IN"
        " (SELECT value FROM json_each(?))", [json.dumps(np.asarray(ids).tolist())])}
    out = np.empty((len(ids), px_size, px_size, 3), dtype=np.uint8)
    inner = np.zeros((len(ids), 2), dtype=np.int64)
    for k, i in enumerate(np.asarray(ids).tolist()):
        tensor, w, h = rows[i]
        out[k] = np.frombuffer(tensor, dtype=np.uint8).reshape(px_size, px_size, 3)
        inner[k] = (w or 0, h or 0)
    return out, inner


SIZE_SLACK = 0.015  # same_dim: the picture inside borders is found to within this share of its size


def same_size(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row by row, whether sizes (k, 2) are the same in either orientation, to within SIZE_SLACK
    (and 2 pixels): how precisely borders are found on a scaled decode."""
    a, b = np.sort(a, axis=1), np.sort(b, axis=1)
    return np.all(np.abs(a - b) <= np.maximum(2, SIZE_SLACK * np.maximum(a, b)), axis=1)


def search(db: Database, scope: Scope, is_new: np.ndarray, is_reference: np.ndarray, px_size: int, threshold: float,
           orientations: tuple[int, ...], *, same_dim: bool, in_folder: bool) -> tone.ToneFound:
    """Every pair with a new image, at most one reference image and at least one framed picture,
    whose tone matches within ``threshold`` once the borders are cut away. ``same_dim``: only where
    the picture inside the borders has the other's size (``same_size``)."""
    framed = bordered(db, px_size)
    found = [tone.ToneFound.empty()]
    if len(framed):
        tone.ensure_keys(db, scope.ids, px_size)
    for part in _buckets(scope, False, in_folder):
        ids, new, ref = scope.ids[part], is_new[part], is_reference[part]
        inside = np.isin(ids, framed)
        sizes = np.stack([scope.widths[part], scope.heights[part]], axis=1) if same_dim else None
        if inside.any() and new.any() and not ref.all():
            found.append(_bucket(db, ids, new, ref, inside, px_size, threshold, orientations, sizes))
    return tone.ToneFound(*(np.concatenate([getattr(f, k) for f in found]) for k in tone.ToneFound.__dataclass_fields__))


def _bucket(db, ids, new, ref, inside, px_size, threshold, orientations, sizes) -> tone.ToneFound:
    """One bucket: the trimmed points of its framed pictures against every point (whole or trimmed);
    ``sizes`` (same_dim): the images' (width, height)."""
    whole, has_whole = tone.load_keys(db, ids, px_size)
    cut, inner = load_trimmed(db, ids[inside], px_size)
    cut_tones = signals.tones(cut)
    has_cut = cut_tones.has_tone
    # points: the whole pictures with a tone, then the trimmed ones with a tone
    pid = np.concatenate([ids[has_whole], ids[inside][has_cut]])
    trim_at = np.concatenate([np.full(int(has_whole.sum()), -1), np.flatnonzero(has_cut)])  # row of ``cut``
    coarse = np.concatenate([whole[has_whole], signals.coarse(cut_tones, px_size)[has_cut].astype(np.float32)])
    is_new = np.concatenate([new[has_whole], new[inside][has_cut]])
    is_ref = np.concatenate([ref[has_whole], ref[inside][has_cut]])
    points = tone.Points.of(coarse, threshold, px_size)
    pa, pb = points.pairs(np.flatnonzero(trim_at >= 0), np.arange(len(pid)), same=False)
    both_cut = trim_at[pb] >= 0
    keep = (pid[pa] != pid[pb]) & (is_new[pa] | is_new[pb]) & ~(is_ref[pa] & is_ref[pb]) & (~both_cut | (pa < pb))
    if sizes is not None:  # the size each point shows: the inside of a framed picture, else the whole
        shown = np.concatenate([sizes[has_whole], inner[has_cut]])
        keep &= same_size(shown[pa], shown[pb])
    pa, pb, o = tone.oriented(coarse, pa[keep], pb[keep], threshold, orientations, px_size)
    found = [tone.ToneFound.empty()]
    for start in range(0, len(pa), tone.EXACT_BATCH):
        found.append(_scored(db, px_size, pid, trim_at, cut, pa[start : start + tone.EXACT_BATCH],
                             pb[start : start + tone.EXACT_BATCH], o[start : start + tone.EXACT_BATCH], threshold))
    merged = tone.ToneFound(*(np.concatenate([getattr(f, k) for f in found]) for k in tone.ToneFound.__dataclass_fields__))
    return _best(merged)


def _best(found: tone.ToneFound) -> tone.ToneFound:
    """Each pair's smallest score over the combinations and orientations; ties: the earlier orientation."""
    if len(found) == 0:
        return found
    ordered = found.take(np.lexsort((found.orient, found.score, found.image_b, found.image_a)))
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = (ordered.image_a[1:] != ordered.image_a[:-1]) | (ordered.image_b[1:] != ordered.image_b[:-1])
    return ordered.take(first)


def _scored(db, px_size, pid, trim_at, cut, pa, pb, o, threshold) -> tone.ToneFound:
    """Exact tone scores of candidate points (pa, pb; orientation o from a to b), as pairs of images
    lower id first, each (pair, orientation)'s best combination within the threshold."""
    used = np.union1d(pa, pb)
    stored_ids = np.unique(pid[used])
    stored = load_tensors(db, stored_ids, px_size)
    tensors = np.where((trim_at[used] >= 0)[:, None, None, None], cut[np.maximum(trim_at[used], 0)],
                       stored[np.searchsorted(stored_ids, pid[used])])
    ia, ib = np.searchsorted(used, pa), np.searchsorted(used, pb)
    score = signals.scores_in(signals.tones(tensors), ia, ib, o, limit=threshold)
    a, b, o = tone.lower_first(pid[pa], pid[pb], o)
    keep = score <= threshold
    a, b, o, score = a[keep], b[keep], o[keep], score[keep]
    ssd = tone.ssd_in(stored[np.searchsorted(stored_ids, a)], stored[np.searchsorted(stored_ids, b)], o)
    return tone.ToneFound(a, b, ssd, o, score)
