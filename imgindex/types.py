"""The frozen dataclasses that cross stage boundaries: what a scan, a search, an action, a report
and the watcher report back, their progress snapshots, and the scope of a scan.

Stages build them; the API returns them; the CLI renders them. Nothing here does any work, so
every layer may import this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar


# ---------------------------------------------------------------- scan


@dataclass(frozen=True)
class ScanScope:
    """Which folders a scan covers, and how. ``roots`` are walked with their subfolders (when
    ``recursive``); ``flat`` folders without them. Files in ``skip_paths`` (still being written) are
    neither read nor dropped. With ``missing_ok``, a root that is gone means everything indexed under
    it is gone (the watcher's case); otherwise a missing root is an error."""

    roots: tuple[str, ...]
    flat: frozenset[str] = frozenset()
    skip_paths: frozenset[str] = frozenset()
    recursive: bool = True
    missing_ok: bool = False


@dataclass(frozen=True)
class ScanProgress:
    """A snapshot for progress bars. ``total`` is an estimate that arrives after a quick count."""

    seen: int
    decoded: int
    unchanged: int
    skipped: int
    failed: int
    total: int | None
    elapsed: float


@dataclass(frozen=True)
class SkippedFile:
    """A file left alone (by the walk or by an action plan), and why."""

    path: str
    reason: str


@dataclass(frozen=True)
class ScanErrorInfo:
    """A file (or a folder) a scan could not read, and why, as ``scan_errors`` records it."""

    path: str
    error_class: str
    message: str


@dataclass(frozen=True)
class ScanReport:
    """What a scan did. Counts are of files; ``errors`` are the files that failed in this scan."""

    scan_id: int
    roots: tuple[str, ...]
    status: str
    seen: int
    added: int
    updated: int
    moved: int
    reused: int
    unchanged: int
    removed: int
    skipped: int
    failed: int
    vanished: int
    decoded: int
    duration: float
    workers: int = 0  # decoding processes started (0: decoded in this process), or the cluster's workers
    executor: str = ""  # what read the files: 'local pool (2 processes)', 'dask tcp://host:8786 (8 workers)'
    errors: tuple[ScanErrorInfo, ...] = ()
    unlisted_folders: tuple[ScanErrorInfo, ...] = ()
    skipped_files: tuple[SkippedFile, ...] = ()  # what the walk passed over (not image files, links...), and why
    timings: ScanTimings | None = None


@dataclass(frozen=True)
class ScanTimings:
    """A scan's seconds: ``total``, ``walk`` (listing, diffing) and ``write`` (SQLite): wall time here;
    ``hash``, ``decode``, ``keys`` (made beside the decode): CPU time of the reading processes, summed."""

    total: float = 0.0
    walk: float = 0.0
    write: float = 0.0
    hash: float = 0.0
    decode: float = 0.0
    keys: float = 0.0


# ---------------------------------------------------------------- search


@dataclass(frozen=True)
class SearchProgress:
    done: int  # units of work (tasks) done
    total: int
    pairs: int
    elapsed: float


@dataclass(frozen=True)
class SearchReport:
    search_id: int
    similarity: str
    threshold: float
    algorithm: str  # classic | chunked
    incremental: bool
    base_search_id: int | None
    images: int
    new_images: int
    pairs: int
    new_pairs: int
    groups: int
    duration: float
    workers: int = 0  # comparison processes started (0: compared in this process), or the cluster's workers
    executor: str = ""  # what compared: 'local pool (2 processes)', 'dask local (2 workers)'
    set_aside: int = 0  # pairs found but not reported: decided not duplicates, or both in reference folders
    off_profile: tuple[str, ...] = ()  # settings this run took that differ from the index's profile
    signals: dict[str, float] = field(default_factory=lambda: {"pixels": 0.0})  # each signal's threshold, + MOTION_KEY
    moved: int = 0  # pairs found close that the motion check set aside this run: two shots of a moving scene
    MOTION_KEY: ClassVar[str] = "motion"  # in ``signals`` (and ``searches.signals``): the motion check was made
    by_signal: dict[str, int] = field(default_factory=dict)  # new pairs each other signal matched first
    unchecked: int = 0  # images indexed before borders were looked for: the trimmed signal skips them
    left_out: tuple[str, ...] = ()  # the preset's signals this search left out (too many images for them)
    timings: SearchTimings | None = None


@dataclass(frozen=True)
class SearchTimings:
    """A search's wall seconds: pixels (plan, keys, compare), signals (tone, rank, trimmed), groups."""

    total: float = 0.0
    pixels: float = 0.0
    signals: float = 0.0
    groups: float = 0.0


@dataclass(frozen=True)
class GroupRow:
    """One grouped image of a search, keeper first in each group: the CSV output's columns, in order."""

    group_id: int
    path: str
    is_keeper: int
    mse_to_keeper: float | None
    rotation: int | None
    mirrored: int | None
    width: int
    height: int
    size: int
    root: str | None
    keep_reason: str | None = None  # why it is kept: 'rule', 'pinned', 'reference'; None: lower quality


# ---------------------------------------------------------------- actions


@dataclass(frozen=True)
class PlannedAction:
    """One file to act on; ``destination`` is where it will go (None: deleted)."""

    kind: str  # 'move', 'trash', 'delete', 'move-back', 'restore'
    source: str
    destination: str | None
    content_hash: str
    size: int
    mtime_ns: int | None = None
    image_id: int | None = None
    keeper: str | None = None
    undoes: int | None = None
    companion_of: str | None = None  # a sidecar (XMP edits): acted on only if this picture is, just before


@dataclass(frozen=True)
class ActionPlan:
    """What a command would do; ``--dry-run`` shows it, ``apply`` does it (re-checking every file)."""

    command: str  # 'move-to', 'delete', 'undo'
    actions: tuple[PlannedAction, ...]
    skipped: tuple[SkippedFile, ...]
    search_id: int | None = None
    destination: str | None = None
    permanent: bool = False

    @property
    def bytes(self) -> int:
        return sum(a.size for a in self.actions)


@dataclass(frozen=True)
class ActionProgress:
    done: int
    total: int
    bytes_done: int
    bytes_total: int
    path: str
    elapsed: float


@dataclass(frozen=True)
class ActionOutcome:
    """How one file's action ended."""

    action_id: int | None
    kind: str
    source: str
    destination: str | None
    outcome: str  # 'done', 'skipped', 'failed'
    message: str | None = None


@dataclass(frozen=True)
class ActionReport:
    """What a move-to, delete or undo did, file by file; the journal has the same in ``actions``."""

    run_id: int
    command: str
    outcomes: tuple[ActionOutcome, ...]
    duration: float
    reindexed: int = 0
    recovered: tuple[ActionOutcome, ...] = field(default=())
    reindex_folders: tuple[str, ...] = ()  # folders whose files came back where the index had dropped them

    def _count(self, outcome: str) -> int:
        return sum(o.outcome == outcome for o in self.outcomes)

    @property
    def done(self) -> int:
        return self._count("done")

    @property
    def skipped(self) -> int:
        return self._count("skipped")

    @property
    def failed(self) -> int:
        return self._count("failed")

    @property
    def paths(self) -> list[str]:
        """Where each file done now is (None for deleted or trashed ones)."""
        return [o.destination for o in self.outcomes if o.outcome == "done"]


# ---------------------------------------------------------------- report


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


# ---------------------------------------------------------------- status and the watcher


@dataclass(frozen=True)
class WatcherStatus:
    """The watcher's row: who holds the lock, since when, and how it is doing."""

    running: bool  # False: a watcher died without cleaning up (its next start repairs the index)
    pid: int
    host: str
    roots: tuple[str, ...]
    started_at: str
    heartbeat_at: str
    seconds_since_heartbeat: float
    pending: int
    batches: int
    last_batch: dict | None


@dataclass(frozen=True)
class Status:
    images: int
    px_size: int | None
    errors: int
    last_scan: dict | None
    last_search: dict | None
    watcher: WatcherStatus | None
    last_action: dict | None = None
    profile: object | None = None  # the search profile (compare.profile.Profile), None before the first search
    decisions: dict | None = None  # decisions in force, by kind


@dataclass(frozen=True)
class BatchReport:
    """What one watcher batch did: for the log line, and for tests."""

    reason: str
    added: int
    updated: int
    moved: int
    removed: int
    failed: int
    new_pairs: int
    pairs: int
    groups: int
    duration: float
    off_profile: tuple[str, ...] = ()  # the search settings it ran with that differ from the index's profile


# ---------------------------------------------------------------- decisions


@dataclass(frozen=True)
class Decision:
    """One review decision, as recorded (``decisions`` table)."""

    id: int
    kind: str  # 'not-duplicates' | 'keep' | 'reference'
    paths: tuple[str, ...]  # the images' paths when decided; a reference: its folder
    created_at: str
    note: str | None = None
    hashes: tuple[str, ...] = ()  # the content hashes it is about (none for a reference)


@dataclass(frozen=True)
class DecisionReport:
    """What a decision command changed, and what the user should know about it."""

    command: str
    added: tuple[Decision, ...] = ()
    removed: tuple[Decision, ...] = ()
    replaced: tuple[Decision, ...] = ()  # earlier decisions the new ones replace (the later wins)
    unchanged: tuple[Decision, ...] = ()  # already decided so
    notes: tuple[str, ...] = ()
    groups: int | None = None  # groups of the latest search with the decisions applied (None: no search yet)


# ---------------------------------------------------------------- checking


@dataclass(frozen=True)
class CheckFinding:
    """An invariant that does not hold (``imgindex check``)."""

    name: str
    count: int
    message: str
    repairable: bool


@dataclass(frozen=True)
class CheckReport:
    findings: tuple[CheckFinding, ...]  # what is wrong now (after repairing, with repair)
    repaired: tuple[str, ...] = ()  # what --repair did
    images: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class RefreshReport:
    """What ``imgindex scan --refresh-signals`` did (``scan.refresh``)."""

    looked_at: int  # images that had no trimmed tensor of this recipe
    framed: int  # of those, pictures with borders (a trimmed tensor now)
    skipped: int  # files changed or gone since they were indexed: the next scan reads them
    duration: float


@dataclass(frozen=True)
class RefreshProgress:
    done: int
    total: int
    elapsed: float
