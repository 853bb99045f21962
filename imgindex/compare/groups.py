"""Matches -> groups, and who is kept in each group.

A group is a connected component of the match graph (pairs decided 'not duplicates' removed):
if a~b and b~c, all three are one group even when a and c are not within the threshold of
each other. (difPy let the first "primary" claim an image, so one picture could appear under
several keys or drop out of its group.)

Who is kept, strongest first: pinned images (``imgindex keep``), then images in reference
folders, then the keeper rule, an ordered list of criteria stored with the index. A camera RAW
always ranks before its renderings (never keep the JPEG and act on the RAW), and the path
breaks the last tie, so the choice is deterministic. Every pinned and reference member is kept;
the group's keeper is the best of them by the rule. The members left are ``lower_quality``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from imgindex.errors import ImgIndexError
from imgindex.scan.discover import under
from imgindex.scan.formats import is_raw

CRITERIA = {
    "resolution": "most pixels",
    "size": "largest file",
    "oldest": "oldest modification time",
    "newest": "newest modification time",
    "path": "first path in alphabetical order",
    "format": "RAW, then lossless formats, then lossy ones",
    "folder": "under the first --prefer-folder, then the next...",
}
DEFAULT_RULE = ("resolution", "size", "path")
LOSSLESS = frozenset({"PNG", "TIFF", "BMP", "DIB", "PPM", "TGA", "QOI", "SGI", "PCX", "ICO", "IM", "GIF"})


@dataclass(frozen=True)
class Member:
    image_id: int
    width: int
    height: int
    size: int
    path: str
    mtime_ns: int = 0
    format: str | None = None
    content_hash: str = ""


@dataclass(frozen=True)
class Policy:
    """How a group's keepers are chosen: the rule, and the decisions that override it."""

    rule: tuple[str, ...] = DEFAULT_RULE
    prefer_folders: tuple[str, ...] = ()
    pinned: Mapping[str, str] = field(default_factory=dict)  # content hash -> path pinned
    reference: tuple[str, ...] = ()


@dataclass(frozen=True)
class Group:
    group_id: int
    keeper: Member
    others: tuple[Member, ...]  # best first; lower_quality unless ``reasons`` keeps them
    reasons: Mapping[int, str]  # image id -> 'rule' | 'pinned' | 'reference', for every member kept


def parse_rule(rule: str | Iterable[str] | None, prefer_folders: Iterable[str] = ()) -> tuple[str, ...]:
    """'resolution,size,path' -> a checked tuple; 'folder' goes first when folders are preferred."""
    if rule is None:
        names = list(DEFAULT_RULE)
    else:
        names = [n.strip().lower() for n in (rule.split(",") if isinstance(rule, str) else rule) if n.strip()]
    unknown = [n for n in names if n not in CRITERIA]
    if unknown or not names:
        raise ImgIndexError(f"Unknown keeper criterion {', '.join(map(repr, unknown)) or '(none given)'}: use a"
                            f" comma-separated list of {', '.join(CRITERIA)} (e.g. --keep resolution,size,path).")
    if len(set(names)) != len(names):
        raise ImgIndexError(f"The keeper rule names a criterion twice: {','.join(names)}.")
    if list(prefer_folders) and "folder" not in names:
        names.insert(0, "folder")
    return tuple(names)


def components(image_a: np.ndarray, image_b: np.ndarray) -> list[np.ndarray]:
    """Connected components (arrays of image ids, ascending) of the graph with edges a-b."""
    if len(image_a) == 0:
        return []
    nodes, inverse = np.unique(np.concatenate([image_a, image_b]), return_inverse=True)
    parent = np.arange(len(nodes))
    left, right = inverse[: len(image_a)], inverse[len(image_a) :]

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for a, b in zip(left.tolist(), right.tolist()):
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(len(nodes))])
    order = np.argsort(roots, kind="stable")
    splits = np.flatnonzero(np.diff(roots[order])) + 1
    return [nodes[part] for part in np.split(order, splits)]


def _format_rank(member: Member) -> int:
    if is_raw(member.path):
        return 0
    return 1 if (member.format or "").upper() in LOSSLESS else 2


def _criterion(name: str, member: Member, policy: Policy):
    if name == "resolution":
        return -member.width * member.height
    if name == "size":
        return -member.size
    if name == "oldest":
        return member.mtime_ns
    if name == "newest":
        return -member.mtime_ns
    if name == "path":
        return member.path
    if name == "format":
        return _format_rank(member)
    folder = os.path.dirname(member.path)
    return next((k for k, f in enumerate(policy.prefer_folders) if under(folder, f)), len(policy.prefer_folders))


def keeper_order(member: Member, policy: Policy = Policy()) -> tuple:
    """Sort key: RAW first, then the rule's criteria in order, then the path."""
    return (not is_raw(member.path), *(_criterion(n, member, policy) for n in policy.rule), member.path)


def choose(ids: Iterable[int], members: dict[int, Member], policy: Policy) -> tuple[Member, tuple[Member, ...], dict]:
    """(keeper, others best first, reasons) of one group."""
    ranked = sorted((members[int(i)] for i in ids), key=lambda m: keeper_order(m, policy))
    reasons: dict[int, str] = {}
    for m in ranked:
        if any(under(os.path.dirname(m.path), r) for r in policy.reference):
            reasons[m.image_id] = "reference"
    copies: dict[str, list[Member]] = {}
    for m in ranked:
        if m.content_hash in policy.pinned:
            copies.setdefault(m.content_hash, []).append(m)
    for content_hash, same in copies.items():  # byte copies of a pinned image: the one pinned, or (moved) the best
        chosen = next((m for m in same if m.path == policy.pinned[content_hash]), same[0])
        reasons[chosen.image_id] = "pinned"
    strength = {"pinned": 0, "reference": 1}
    keeper = min(ranked, key=lambda m: strength.get(reasons.get(m.image_id, ""), 2))  # min: stable, rule order
    reasons.setdefault(keeper.image_id, "rule")
    return keeper, tuple(m for m in ranked if m is not keeper), reasons


def make_groups(components_: Iterable[np.ndarray], members: dict[int, Member], policy: Policy = Policy()) -> list[Group]:
    """Groups numbered 1.. in the order of their keeper's path, so numbering is stable."""
    chosen = [choose(ids, members, policy) for ids in components_]
    chosen.sort(key=lambda g: g[0].path)
    return [Group(n, keeper, others, reasons) for n, (keeper, others, reasons) in enumerate(chosen, start=1)]
