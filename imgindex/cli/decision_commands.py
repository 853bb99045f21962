"""Commands that record review decisions and the search profile: ignore, unignore, keep, unkeep,
unreference, decisions, config. Each decision is applied to the latest search's groups at once."""

from __future__ import annotations

import click

from imgindex.api import Index
from imgindex.cli import render
from imgindex.cli.app import cli, user_errors
from imgindex.cli.options import existing_db_option, match_options

IMAGES = click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
NOTE = click.option("--note", default=None, help="Why: kept with the decision (the decisions table's note).")


@cli.command()
@IMAGES
@existing_db_option
@click.option("--group", "group_id", type=click.IntRange(min=1), default=None,
              help="Every member of this group of the latest search (the group_id of match_groups).")
@NOTE
@click.option("--list", "list_", is_flag=True, help="List the decisions 'not duplicates' in force.")
@user_errors
def ignore(paths, db_path, group_id, note, list_):
    """Record that these images are different photos, not duplicates: no pair of them is reported again.

    Stored by content (SHA-256), so a rename, a move, a byte copy or a rescan keeps the decision.
    Decisions are about pairs: a new copy of one of them still joins its group.

    \b
    Examples:
      imgindex ignore burst/IMG_0001.jpg burst/IMG_0002.jpg --db photos.db
      imgindex ignore --group 12 --db photos.db --note "twins, not the same photo"
      imgindex ignore --list --db photos.db
    """
    with Index(db_path) as index:
        if list_:
            return render.decision_list(index.decisions("not-duplicates"), "not duplicates")
        if bool(paths) == (group_id is not None):
            raise click.UsageError("Give two or more images, or --group N (not both).")
        report = index.ignore_group(group_id, note=note) if group_id else index.ignore(paths, note=note)
        render.decision_report(report)


@cli.command()
@IMAGES
@existing_db_option
@click.option("--id", "decision_ids", type=int, multiple=True, help="A decision's id (see ignore --list).")
@user_errors
def unignore(paths, db_path, decision_ids):
    """Take back 'not duplicates' between these images: the next search reports them again if they match.

    \b
    Example:
      imgindex unignore burst/IMG_0001.jpg burst/IMG_0002.jpg --db photos.db
    """
    if not paths and not decision_ids:
        raise click.UsageError("Give the images (two or more), or --id N.")
    with Index(db_path) as index:
        render.decision_report(index.unignore(paths, decision_ids=decision_ids))


@cli.command()
@IMAGES
@existing_db_option
@NOTE
@click.option("--list", "list_", is_flag=True, help="List the pinned keepers.")
@user_errors
def keep(paths, db_path, note, list_):
    """Pin images as keepers: each is kept in whatever group it is in, now and after later searches.

    A pinned image is never moved or deleted. Two pinned images in one group are both kept.

    \b
    Examples:
      imgindex keep ~/Pictures/best/IMG_0042.jpg --db photos.db
      imgindex keep --list --db photos.db
    """
    with Index(db_path) as index:
        if list_:
            return render.decision_list(index.decisions("keep"), "pinned keepers")
        if not paths:
            raise click.UsageError("Give the images to keep (or --list).")
        render.decision_report(index.keep(paths, note=note))


@cli.command()
@IMAGES
@existing_db_option
@user_errors
def unkeep(paths, db_path):
    """Unpin images: the keeper rule chooses again.

    \b
    Example:
      imgindex unkeep ~/Pictures/best/IMG_0042.jpg --db photos.db
    """
    if not paths:
        raise click.UsageError("Give the pinned images to unpin.")
    with Index(db_path) as index:
        render.decision_report(index.unkeep(paths))


@cli.command()
@click.argument("folders", nargs=-1, required=True, type=click.Path(file_okay=False))
@existing_db_option
@user_errors
def unreference(folders, db_path):
    """Stop treating folders as reference folders (set with --reference).

    \b
    Example:
      imgindex unreference ~/Archive --db photos.db
    """
    with Index(db_path) as index:
        render.decision_report(index.remove_reference(folders))


@cli.command()
@existing_db_option
@click.option("--kind", type=click.Choice(["not-duplicates", "keep", "reference"]), default=None,
              help="Only decisions of this kind.")
@user_errors
def decisions(db_path, kind):
    """List the decisions in force: not duplicates, pinned keepers, reference folders.

    \b
    Example:
      imgindex decisions --db photos.db
    """
    with Index(db_path) as index:
        render.decision_list(index.decisions(kind), kind or "decisions")


@cli.command()
@existing_db_option
@match_options
@click.option("--no-prefer-folder", "no_prefer_folder", is_flag=True,
              help="Forget the preferred folders (and the 'folder' criterion with them).")
@user_errors
def config(db_path, save_profile, reference, no_prefer_folder, **settings):
    """Show or change the index's search profile: what search, find and watch use unless told otherwise.

    \b
    Examples:
      imgindex config --db photos.db
      imgindex config --db photos.db --similarity similar --keep oldest,resolution
      imgindex config --db photos.db --prefer-folder ~/Pictures/Originals
      imgindex config --db photos.db --no-prefer-folder
    """
    with Index(db_path) as index:
        if reference:
            render.decision_report(index.add_reference(reference))
        settings["prefer_folders"] = () if no_prefer_folder else settings["prefer_folders"] or None
        if any(v is not None for v in settings.values()) or index.profile is None:
            index.configure(**settings)
        render.profile_lines(index.profile)
