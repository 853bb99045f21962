"""The index's search profile: the settings every search, find and watch uses unless told otherwise.

The first search stores the settings it ran with. Later commands fill in what they were not
given from the profile; options given for one run stay that run's unless ``save`` makes them
the profile, and the run reports which settings differ (its results replace the profile's in
the views, which users should hear about).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imgindex.compare.groups import DEFAULT_RULE, parse_rule
from imgindex.compare.settings import resolve_signals, resolve_similarity
from imgindex.db.queries import get_setting, set_setting

if TYPE_CHECKING:
    from sqlite_utils import Database

KEY = "search_profile"


@dataclass(frozen=True)
class Profile:
    similarity: str = "duplicates"
    rotate: bool = True
    mirror: bool = False
    same_dim: bool = True
    keep: tuple[str, ...] = DEFAULT_RULE
    prefer_folders: tuple[str, ...] = ()
    signals: tuple[str, ...] | None = None  # None: the similarity preset's (settings.resolve_signals)

    @property
    def threshold(self) -> float:
        return resolve_similarity(self.similarity)[1]

    @property
    def chosen_signals(self) -> tuple[str, ...]:
        return resolve_signals(self.signals, resolve_similarity(self.similarity)[0])


def load(db: Database) -> Profile | None:
    """The stored profile, or None before the first search."""
    raw = get_setting(db, KEY)
    if raw is None:
        return None
    data = json.loads(raw)
    data["keep"] = tuple(data.get("keep") or DEFAULT_RULE)
    data["prefer_folders"] = tuple(data.get("prefer_folders") or ())
    data["signals"] = tuple(data["signals"]) if data.get("signals") else None
    return Profile(**{k: v for k, v in data.items() if k in Profile.__dataclass_fields__})


def save(db: Database, profile: Profile) -> None:
    with db.atomic():
        set_setting(db, KEY, json.dumps(dataclasses.asdict(profile)))


def given(similarity=None, rotate=None, mirror=None, same_dim=None, keep=None, prefer_folders=None,
          signals=None) -> dict:
    """The settings a caller gave (None: not given), checked and in their stored form. Signals
    given as 'default' go back to the preset's."""
    out = {}
    if similarity is not None:
        out["similarity"] = resolve_similarity(similarity)[0]
    if signals is not None:
        default = isinstance(signals, str) and signals.strip().lower() == "default"
        out["signals"] = None if default else resolve_signals(signals, "")
    out.update({k: bool(v) for k, v in (("rotate", rotate), ("mirror", mirror), ("same_dim", same_dim))
                if v is not None})
    if prefer_folders is not None:
        out["prefer_folders"] = tuple(os.path.abspath(os.path.expanduser(os.fspath(f))) for f in prefer_folders)
    if keep is not None:
        out["keep"] = parse_rule(keep, out.get("prefer_folders", ()))
    return out


def resolve(db: Database, options: dict, *, save_profile: bool = False) -> tuple[Profile, tuple[str, ...]]:
    """(the settings to run with, the names of those that differ from the stored profile).

    The first search's settings become the profile, and so do any run's with ``save_profile``.
    """
    stored = load(db)
    effective = dataclasses.replace(stored or Profile(), **options)
    if effective.prefer_folders and "folder" not in effective.keep:  # preferring folders means the criterion
        effective = dataclasses.replace(effective, keep=("folder", *effective.keep))
    if not effective.prefer_folders and "folder" in effective.keep and len(effective.keep) > 1:  # folders cleared
        effective = dataclasses.replace(effective, keep=tuple(k for k in effective.keep if k != "folder"))
    if stored is None or save_profile:
        if effective != stored:
            save(db, effective)
        return effective, ()
    differs = tuple(f.name for f in dataclasses.fields(Profile)
                    if _norm(f.name, getattr(effective, f.name)) != _norm(f.name, getattr(stored, f.name)))
    return effective, differs


def _norm(name: str, value):
    return resolve_similarity(value)[1] if name == "similarity" else value
