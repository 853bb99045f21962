"""Matches -> groups, and the keeper of each group.

A group is a connected component of the match graph: if a~b and b~c, all three are one group
even when a and c are not within the threshold of each other. (difPy let the first "primary"
claim an image, so one picture could appear under several keys or drop out of its group.)
The keeper is a camera RAW file if the group has one (the camera's JPEG is a rendering of it:
never keep the JPEG and act on the RAW), else the image with the most pixels; ties go to the
larger file, then to the smaller path (so the choice is deterministic). The other members are
``lower_quality``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from imgindex.scan.formats import is_raw


@dataclass(frozen=True)
class Member:
    image_id: int
    width: int
    height: int
    size: int
    path: str


@dataclass(frozen=True)
class Group:
    group_id: int
    keeper: Member
    others: tuple[Member, ...]  # lower_quality, best first


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


def keeper_order(member: Member) -> tuple:
    """Sort key: RAW first, then most pixels, then the larger file, then the smaller path."""
    return (not is_raw(member.path), -member.width * member.height, -member.size, member.path)


def make_groups(components_: Iterable[np.ndarray], members: dict[int, Member]) -> list[Group]:
    """Groups numbered 1.. in the order of their keeper's path, so numbering is stable."""
    groups = []
    for ids in components_:
        ranked = sorted((members[int(i)] for i in ids), key=keeper_order)
        groups.append((ranked[0], tuple(ranked[1:])))
    groups.sort(key=lambda g: g[0].path)
    return [Group(n, keeper, others) for n, (keeper, others) in enumerate(groups, start=1)]
