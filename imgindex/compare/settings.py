"""What a search compares with what: the similarity presets, a search's settings, and the earlier
search an incremental search builds on, sharing its rows (the latest with the same settings)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from imgindex.compare import motion as motion_
from imgindex.errors import ImgIndexError
from imgindex.types import SearchReport
from imgindex.scan.decode import DECODER

if TYPE_CHECKING:
    from sqlite_utils import Database

SIMILARITY_PRESETS = {"duplicates": 0.0, "similar": 6.0}  # calibrated: README, benchmarks/accuracy.py
SIGNALS = ("pixels", "tone", "rank", "trimmed")  # in the order a pair's signal is recorded: the first that matches
RANK_THRESHOLD = 0.015  # the same score on the luminance's ranks (compare.signals.ranks); calibrated likewise
TRIMMED_THRESHOLD = 0.03  # the tone score of a framed picture's inside (compare.trimmed); calibrated likewise
TONE_THRESHOLD = 0.02  # the tone score a pair may have (compare.signals); calibrated: benchmarks/accuracy.py, README


def resolve_signals(signals, similarity_name: str) -> tuple[str, ...]:
    """The signals a search uses: those given ('pixels,tone' or a sequence), or the preset's: the
    'similar' preset uses both, 'duplicates' and a number (an MSE threshold, as difPy's) pixels only."""
    if signals is None:
        return SIGNALS if similarity_name == "similar" else ("pixels",)
    names = signals.split(",") if isinstance(signals, str) else list(signals)
    names = [str(n).strip().lower() for n in names if str(n).strip()]
    unknown = [n for n in names if n not in SIGNALS]
    if unknown or not names:
        raise ImgIndexError(f"signals must be one or more of {', '.join(SIGNALS)} (comma-separated); "
                            f"got {signals!r}.")
    return tuple(n for n in SIGNALS if n in names)


def signal_thresholds(signals: tuple[str, ...], threshold: float = 0.0, motion: bool = False) -> dict[str, float]:
    """Each signal's threshold, as a search records them (``searches.signals``); pixels' is the MSE
    ``threshold``, the others are fixed. ``motion``: and the motion check's version, under SearchReport.MOTION_KEY."""
    limits = {"pixels": threshold, "tone": TONE_THRESHOLD, "rank": RANK_THRESHOLD, "trimmed": TRIMMED_THRESHOLD}
    out = {n: limits[n] for n in signals}
    if motion:
        out[SearchReport.MOTION_KEY] = float(motion_.VERSION)
    return out


def has_motion_check(similarity_name: str) -> bool:
    """Whether a search sets aside pairs that moved (``compare.motion``): the 'similar' preset does;
    'duplicates' (identical tensors never moved) and a number (an MSE, as difPy's) do not."""
    return similarity_name == "similar"


def resolve_similarity(similarity: str | float | int) -> tuple[str, float]:
    """'duplicates' -> 0, 'similar' -> the calibrated preset, a number >= 0 -> itself."""
    if isinstance(similarity, str) and similarity.strip().lower() in SIMILARITY_PRESETS:
        name = similarity.strip().lower()
        return name, SIMILARITY_PRESETS[name]
    try:
        value = float(similarity)
    except (TypeError, ValueError):
        value = float("nan")
    if not np.isfinite(value) or value < 0 or isinstance(similarity, bool):
        raise ImgIndexError(
            f"similarity must be 'duplicates', 'similar' or a number >= 0 (an MSE threshold); got {similarity!r}."
        )
    return f"{value:g}", value


@dataclass(frozen=True)
class Settings:
    """The columns of a searches row that decide which pairs it finds."""

    similarity: str
    threshold: float
    rotate: bool
    mirror: bool
    same_dim: bool
    in_folder: bool
    roots: tuple[str, ...]
    px_size: int
    # not deciding which pairs are found, but how they are grouped and which are compared at all
    reference: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    prefer_folders: tuple[str, ...] = ()
    signals: tuple[str, ...] = ("pixels",)
    motion: bool = False  # pairs that moved are set aside (``compare.motion``): the 'similar' preset

    def as_row(self) -> dict:
        return {"similarity": self.similarity, "threshold": self.threshold, "rotate": int(self.rotate),
                "mirror": int(self.mirror), "same_dim": int(self.same_dim), "in_folder": int(self.in_folder),
                "roots": json.dumps(list(self.roots)), "px_size": self.px_size, "decoder": DECODER,
                "reference": json.dumps(list(self.reference)), "keep_rule": self.keep_rule,
                "signals": json.dumps(signal_thresholds(self.signals, self.threshold, self.motion))}

    @property
    def keep_rule(self) -> str:
        return json.dumps({"keep": list(self.keep), "prefer_folders": list(self.prefer_folders)})


@dataclass(frozen=True)
class Base:
    """The earlier search an incremental one builds on."""

    search_id: int
    max_image_id: int
    started_at: str
    reference: tuple[str, ...] = ()
    keep_rule: str | None = None
    decisions_version: int | None = None
    pair_set: int | None = None  # the chain it belongs to (``persist``)
    revision: int = 0  # edits of its groups since it finished: one more means the base moved


def base_search(db: Database, settings: Settings) -> Base | None:
    """The latest completed search with the same settings, whose pairs can be carried over."""
    row = db.execute(
        "SELECT id, max_image_id, threshold, rotate, mirror, same_dim, in_folder, roots, px_size, decoder,"
        " started_at, pair_set, reference, keep_rule, decisions_version, revision, signals FROM searches"
        " WHERE status = 'completed' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    wanted = settings.as_row()
    same = (row[2] == wanted["threshold"]
            and tuple(row[3:10]) == tuple(wanted[k] for k in ("rotate", "mirror", "same_dim", "in_folder", "roots",
                                                                "px_size", "decoder")))
    if not same or _signals_of(row[16], row[2]) != json.loads(wanted["signals"]):
        return None
    return Base(row[0], row[1] or 0, row[10], tuple(json.loads(row[12] or "[]")), row[13], row[14],
                row[11] if row[11] is not None else row[0], row[15] or 0)


def _signals_of(stored: str | None, threshold: float) -> dict[str, float]:
    """A searches row's signals; NULL (searches before signals existed): pixels at its threshold."""
    return json.loads(stored) if stored else {"pixels": threshold}


def stored_settings(db: Database, search_id: int) -> Settings:
    """The settings a recorded search ran with."""
    row = db.execute("SELECT similarity, threshold, rotate, mirror, same_dim, in_folder, roots, px_size, reference,"
                     " keep_rule, signals FROM searches WHERE id = ?", [search_id]).fetchone()
    rule = json.loads(row[9]) if row[9] else {}
    signals = _signals_of(row[10], float(row[1]))
    return Settings(row[0], float(row[1]), bool(row[2]), bool(row[3]), bool(row[4]), bool(row[5]),
                    tuple(json.loads(row[6])), int(row[7] or 0), tuple(json.loads(row[8] or "[]")),
                    tuple(rule.get("keep") or ()), tuple(rule.get("prefer_folders") or ()),
                    tuple(n for n in SIGNALS if n in signals), SearchReport.MOTION_KEY in signals)


def still_head(db: Database, base: Base) -> bool:
    """Whether ``base`` is still the last completed search of its chain, its groups unedited since
    it was read: only then may a search build on it (``persist``)."""
    row = db.execute("SELECT id, revision FROM searches WHERE status = 'completed' AND pair_set = ?"
                     " ORDER BY id DESC LIMIT 1", [base.pair_set]).fetchone()
    return row is not None and row[0] == base.search_id and (row[1] or 0) == base.revision
