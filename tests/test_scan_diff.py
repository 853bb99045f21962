"""The scan's diff is a pure function: file facts and rows in, decisions out (no files, no database)."""

from __future__ import annotations

from imgindex.scan.diff import ReadTask, Row, diff_folder
from imgindex.scan.discover import FileFacts

DECODER = "recipe-1"
RAW = ("raw-preview", "raw-demosaic")
FOLDER = "/photos"


def recipes(path: str) -> tuple[str, ...]:
    """As ``decode.recipes``: a RAW file may be made by either of two recipes, anything else by one."""
    return RAW if path.endswith(".dng") else (DECODER,)


def facts(name: str, size: int = 100, mtime_ns: int = 1) -> FileFacts:
    return FileFacts(f"{FOLDER}/{name}", size, mtime_ns)


def row(image_id: int, size: int = 100, mtime_ns: int = 1, decoder: str = DECODER) -> Row:
    return Row(image_id, size, mtime_ns, decoder)


def test_an_unchanged_file_is_not_read_and_a_new_one_is():
    diff = diff_folder(FOLDER, [facts("a.jpg"), facts("b.jpg")], {f"{FOLDER}/a.jpg": row(1)}, {}, decoders=recipes)
    assert diff.to_read == (ReadTask(f"{FOLDER}/b.jpg", FOLDER, None, 100),)
    assert (diff.seen, diff.unchanged, diff.failed_again) == (2, 1, 0)
    assert diff.missing == {} and diff.forget_errors == ()


def test_size_mtime_or_decoder_changed_means_read_again_with_the_old_row():
    rows = {f"{FOLDER}/size.jpg": row(1, size=99), f"{FOLDER}/mtime.jpg": row(2, mtime_ns=0),
            f"{FOLDER}/recipe.jpg": row(3, decoder="recipe-0")}
    diff = diff_folder(FOLDER, [facts("size.jpg"), facts("mtime.jpg"), facts("recipe.jpg")], rows, {},
                       decoders=recipes)
    assert {(t.path.rsplit("/", 1)[1], t.old_id) for t in diff.to_read} == {("size.jpg", 1), ("mtime.jpg", 2),
                                                                           ("recipe.jpg", 3)}
    assert diff.unchanged == 0


def test_a_raw_made_by_either_of_its_recipes_is_unchanged_and_one_made_by_another_is_read_again():
    rows = {f"{FOLDER}/preview.dng": row(1, decoder="raw-preview"),
            f"{FOLDER}/demosaic.dng": row(2, decoder="raw-demosaic"),
            f"{FOLDER}/old.dng": row(3, decoder=DECODER), f"{FOLDER}/odd.jpg": row(4, decoder="raw-preview")}
    diff = diff_folder(FOLDER, [facts(p.rsplit("/", 1)[1]) for p in rows], rows, {}, decoders=recipes)
    assert {(t.path.rsplit("/", 1)[1], t.old_id) for t in diff.to_read} == {("old.dng", 3), ("odd.jpg", 4)}
    assert diff.unchanged == 2


def test_a_file_that_failed_is_not_opened_again_until_it_changes():
    failed = {f"{FOLDER}/bad.jpg": (100, 1), f"{FOLDER}/fixed.jpg": (5, 1)}
    diff = diff_folder(FOLDER, [facts("bad.jpg"), facts("fixed.jpg")], {}, failed, decoders=recipes)
    assert [t.path for t in diff.to_read] == [f"{FOLDER}/fixed.jpg"]
    assert diff.failed_again == 1 and diff.forget_errors == ()


def test_rows_and_errors_of_files_no_longer_there_are_missing_and_forgotten():
    rows = {f"{FOLDER}/gone.jpg": row(7), f"{FOLDER}/kept.jpg": row(8)}
    failed = {f"{FOLDER}/gone-bad.jpg": (1, 1)}
    diff = diff_folder(FOLDER, [facts("kept.jpg")], rows, failed, decoders=recipes)
    assert diff.missing == {7: f"{FOLDER}/gone.jpg"}
    assert diff.forget_errors == (f"{FOLDER}/gone-bad.jpg",)
    assert diff.to_read == () and diff.unchanged == 1


def test_files_still_being_written_are_neither_read_counted_nor_missing():
    rows = {f"{FOLDER}/copying.jpg": row(3, size=1)}
    diff = diff_folder(FOLDER, [facts("copying.jpg", size=50)], rows, {}, decoders=recipes,
                       skip_paths=frozenset({f"{FOLDER}/copying.jpg"}))
    assert diff.to_read == () and diff.seen == 0 and diff.missing == {}
