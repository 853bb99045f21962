"""The keeper rule, criterion by criterion, and what overrides it (pure: no files)."""

from __future__ import annotations

import pytest

from imgindex.compare.groups import Member, Policy, choose, parse_rule
from imgindex.errors import ImgIndexError

# (id, width, height, size, path, mtime_ns, format, content_hash)
BIG_NEW = Member(1, 4000, 3000, 3_000_000, "/p/phone/big.jpg", 300, "JPEG", "h1")
SMALL_OLD = Member(2, 1000, 750, 400_000, "/p/archive/small.jpg", 100, "JPEG", "h2")
PNG_MID = Member(3, 2000, 1500, 5_000_000, "/p/export/mid.png", 200, "PNG", "h3")
RAW = Member(4, 1000, 750, 20_000_000, "/p/camera/IMG_1.CR2", 250, None, "h4")
ALL = {m.image_id: m for m in (BIG_NEW, SMALL_OLD, PNG_MID)}


def keeper(rule: str, members=ALL, **policy) -> int:
    chosen, _others, reasons = choose(members, members, Policy(parse_rule(rule, policy.get("prefer_folders", ())),
                                                               **policy))
    return chosen.image_id


@pytest.mark.parametrize("rule, expected", [
    ("resolution,size,path", 1), ("size", 3), ("oldest", 2), ("newest", 1), ("path", 2),
    ("format,resolution", 3), ("format,size", 3), ("oldest,resolution", 2),
])
def test_each_criterion_picks_what_it_says(rule, expected):
    assert keeper(rule) == expected


def test_a_raw_is_kept_over_its_renderings_whatever_the_rule():
    members = {**ALL, RAW.image_id: RAW}
    for rule in ("resolution", "newest", "path", "size,oldest"):
        assert keeper(rule, members) == 4


def test_preferred_folders_come_first_in_their_order():
    assert keeper("resolution", prefer_folders=("/p/archive",)) == 2
    assert keeper("resolution", prefer_folders=("/p/nowhere", "/p/export", "/p/archive")) == 3
    assert parse_rule("size", ("/p/archive",)) == ("folder", "size")
    assert parse_rule("size,folder", ("/p/archive",)) == ("size", "folder")


def test_pins_beat_references_beat_the_rule_and_all_are_kept():
    chosen, others, reasons = choose(ALL, ALL, Policy(pinned={"h2": "/p/archive/small.jpg"}, reference=("/p/export",)))
    assert chosen.image_id == 2 and reasons == {2: "pinned", 3: "reference"}
    assert [m.image_id for m in others] == [1, 3]  # the rest in rule order; 3 is kept all the same
    chosen, _, reasons = choose(ALL, ALL, Policy(reference=("/p/export", "/p/archive")))
    assert chosen.image_id == 3 and reasons == {3: "reference", 2: "reference"}  # the best reference by the rule


def test_a_pin_on_byte_copies_keeps_the_copy_pinned_or_else_the_best():
    copy = Member(5, 4000, 3000, 3_000_000, "/p/backup/big.jpg", 300, "JPEG", "h1")
    members = {**ALL, 5: copy}
    _, _, reasons = choose(members, members, Policy(pinned={"h1": "/p/backup/big.jpg"}))
    assert reasons == {5: "pinned"}
    _, _, reasons = choose(members, members, Policy(pinned={"h1": "/p/moved/away.jpg"}))
    assert reasons == {5: "pinned"}  # the pinned path is gone: the best copy by the rule (the path breaks the tie)


@pytest.mark.parametrize("rule, message", [("sharpest", "Unknown keeper criterion 'sharpest'"), ("", "none given"),
                                           ("size,size", "names a criterion twice")])
def test_bad_rules_say_what_is_allowed(rule, message):
    with pytest.raises(ImgIndexError, match=message):
        parse_rule(rule)
