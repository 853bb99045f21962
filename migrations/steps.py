"""Schema steps, oldest first. Names are recorded in ``_sqlite_migrations``: never rename one."""

from sqlite_utils import Database
from sqlite_utils.migrations import Migrations

MIGRATIONS = Migrations("imgindex")


@MIGRATIONS(name="0001_index")
def index_tables(db: Database) -> None:
    """Images, their tensors, scan runs and decode errors."""
    db.executescript(
        """
        CREATE TABLE settings (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        -- AUTOINCREMENT: ids are never reused, so "ids above N" means "indexed after N",
        -- which the comparer uses to search only what is new.
        CREATE TABLE images (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            path TEXT NOT NULL UNIQUE,
            folder TEXT NOT NULL,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            width INTEGER NOT NULL,
            height INTEGER NOT NULL,
            format TEXT,
            content_hash TEXT NOT NULL,
            px_size INTEGER NOT NULL,
            decoder TEXT NOT NULL,
            indexed_at TEXT NOT NULL
        );
        CREATE TABLE tensors (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            px_size INTEGER NOT NULL,
            tensor BLOB NOT NULL
        );
        CREATE TABLE scans (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            roots TEXT NOT NULL,
            options TEXT NOT NULL,
            seen INTEGER NOT NULL DEFAULT 0,
            added INTEGER NOT NULL DEFAULT 0,
            updated INTEGER NOT NULL DEFAULT 0,
            moved INTEGER NOT NULL DEFAULT 0,
            unchanged INTEGER NOT NULL DEFAULT 0,
            removed INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0,
            decoded INTEGER NOT NULL DEFAULT 0
        );
        CREATE TABLE scan_errors (
            path TEXT PRIMARY KEY,
            folder TEXT NOT NULL,
            error_class TEXT NOT NULL,
            message TEXT NOT NULL,
            at TEXT NOT NULL,
            size INTEGER,
            mtime_ns INTEGER,
            scan_id INTEGER REFERENCES scans(id)
        );
        """
    )


@MIGRATIONS(name="0002_lookups_and_views")
def lookups_and_views(db: Database) -> None:
    """Indexes the incremental scan needs, and the public ``vectors`` view."""
    db.executescript(
        """
        CREATE INDEX images_folder ON images(folder);
        CREATE INDEX images_content_hash ON images(content_hash);
        CREATE INDEX scan_errors_folder ON scan_errors(folder);
        CREATE VIEW vectors AS
            SELECT image_id, px_size, tensor FROM tensors;
        """
    )


@MIGRATIONS(name="0003_searches")
def searches(db: Database) -> None:
    """Search runs, their matching pairs and groups, and the public views on the latest run."""
    db.executescript(
        """
        -- set when a file's path changes (a move), so an incremental search compares it again
        ALTER TABLE images ADD COLUMN moved_at TEXT;
        CREATE TABLE searches (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,
            similarity TEXT NOT NULL,
            threshold REAL NOT NULL,
            rotate INTEGER NOT NULL,
            mirror INTEGER NOT NULL,
            same_dim INTEGER NOT NULL,
            in_folder INTEGER NOT NULL,
            roots TEXT NOT NULL,
            px_size INTEGER,
            decoder TEXT,
            algorithm TEXT,
            processes INTEGER,
            chunksize INTEGER,
            base_search_id INTEGER,
            max_image_id INTEGER,
            images INTEGER,
            new_images INTEGER,
            pairs INTEGER,
            groups INTEGER,
            duration REAL
        );
        -- a pair is stored once, lower image id first; b = T(a) with T = (mirrored, rotation)
        CREATE TABLE pairs (
            search_id INTEGER NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
            image_a INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            image_b INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            mse REAL NOT NULL,
            rotation INTEGER NOT NULL,
            mirrored INTEGER NOT NULL,
            found_at TEXT NOT NULL,
            PRIMARY KEY (search_id, image_a, image_b)
        ) WITHOUT ROWID;
        CREATE INDEX pairs_image_a ON pairs(image_a);
        CREATE INDEX pairs_image_b ON pairs(image_b);
        CREATE TABLE group_members (
            search_id INTEGER NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
            group_id INTEGER NOT NULL,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            is_keeper INTEGER NOT NULL,
            root TEXT,
            -- this image against its group's keeper (exact, best orientation; NULL for the keeper):
            -- image = T(keeper), T = (mirrored, rotation clockwise)
            mse_to_keeper REAL,
            rotation INTEGER,
            mirrored INTEGER,
            PRIMARY KEY (search_id, image_id)
        ) WITHOUT ROWID;
        CREATE INDEX group_members_image ON group_members(image_id);
        CREATE INDEX group_members_group ON group_members(search_id, group_id);
        CREATE VIEW latest_search AS
            SELECT max(id) AS id FROM searches WHERE status = 'completed';
        CREATE VIEW match_pairs AS
            SELECT a.path AS path_a, b.path AS path_b, p.mse, p.rotation, p.mirrored, p.found_at,
                   p.image_a, p.image_b, p.search_id
            FROM pairs p
            JOIN images a ON a.id = p.image_a
            JOIN images b ON b.id = p.image_b
            WHERE p.search_id = (SELECT id FROM latest_search);
        CREATE VIEW match_groups AS
            SELECT g.group_id, i.path, g.is_keeper, i.width, i.height, i.size, i.folder, i.format,
                   g.mse_to_keeper, g.rotation, g.mirrored, g.root, g.image_id, g.search_id
            FROM group_members g
            JOIN images i ON i.id = g.image_id
            WHERE g.search_id = (SELECT id FROM latest_search);
        """
    )


@MIGRATIONS(name="0004_watcher")
def watcher(db: Database) -> None:
    """The watcher's lock and heartbeat: at most one watcher writes to an index."""
    db.executescript(
        """
        CREATE TABLE watcher (
            id INTEGER PRIMARY KEY CHECK (id = 1),
            pid INTEGER NOT NULL,
            process_start TEXT,
            host TEXT NOT NULL,
            roots TEXT NOT NULL,
            started_at TEXT NOT NULL,
            heartbeat_at TEXT NOT NULL,
            pending INTEGER NOT NULL DEFAULT 0,
            batches INTEGER NOT NULL DEFAULT 0,
            last_batch_at TEXT,
            last_batch TEXT
        );
        """
    )


@MIGRATIONS(name="0005_search_keys")
def search_keys(db: Database) -> None:
    """Per-image facts the comparer plans with, computed once from the tensor and kept."""
    db.executescript(
        """
        -- mean: of all tensor values (pairs whose means differ by more than sqrt(threshold)
        -- cannot match); ikey: channel sums and sums of squares, the same in every orientation
        -- (only images with equal keys can be identical); coarse: float64 block sums / sqrt(size)
        -- (kernel.coarse), from which the lower bound of every pair is computed without the tensor
        CREATE TABLE search_keys (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            mean REAL NOT NULL,
            ikey BLOB NOT NULL,
            coarse BLOB NOT NULL
        );
        """
    )


@MIGRATIONS(name="0006_search_keys_coarse")
def search_keys_coarse(db: Database) -> None:
    """Indexes made between 0005's first and final form lack the coarse column: rebuild the cache."""
    if "coarse" not in {c.name for c in db["search_keys"].columns}:
        db.executescript(
            """
            DROP TABLE search_keys;
            CREATE TABLE search_keys (
                image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
                mean REAL NOT NULL,
                ikey BLOB NOT NULL,
                coarse BLOB NOT NULL
            );
            """
        )


@MIGRATIONS(name="0007_actions")
def actions(db: Database) -> None:
    """The journal of moves, deletions and undos: written before a file is touched, completed after."""
    db.executescript(
        """
        -- one row per move-to / delete / undo command
        CREATE TABLE action_runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            command TEXT NOT NULL,          -- 'move-to', 'delete', 'undo'
            search_id INTEGER,              -- the search whose lower_quality images were acted on
            destination TEXT,               -- move-to's DEST
            permanent INTEGER NOT NULL DEFAULT 0,
            pid INTEGER NOT NULL,
            process_start TEXT,
            host TEXT NOT NULL,
            started_at TEXT NOT NULL,
            finished_at TEXT,
            status TEXT NOT NULL,           -- 'running', 'completed', 'interrupted'
            planned INTEGER NOT NULL DEFAULT 0,
            done INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0,
            failed INTEGER NOT NULL DEFAULT 0
        );
        -- one row per file, inserted with outcome 'planned' (and committed) before the file is
        -- touched; image_id has no foreign key: the journal outlives the image rows it names
        CREATE TABLE actions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL REFERENCES action_runs(id),
            kind TEXT NOT NULL,             -- 'move', 'trash', 'delete', 'move-back', 'restore'
            image_id INTEGER,
            source TEXT NOT NULL,
            destination TEXT,               -- where it went: DEST path, trash path, NULL if deleted
            content_hash TEXT NOT NULL,     -- SHA-256 of the file, checked before and after
            size INTEGER NOT NULL,
            keeper TEXT,                    -- the copy that stays
            undoes INTEGER REFERENCES actions(id),
            planned_at TEXT NOT NULL,
            done_at TEXT,
            outcome TEXT NOT NULL,          -- 'planned', 'done', 'skipped', 'failed', 'undone'
            message TEXT
        );
        CREATE INDEX actions_run ON actions(run_id);
        CREATE INDEX actions_outcome ON actions(outcome);
        """
    )


@MIGRATIONS(name="0008_decisions")
def decisions(db: Database) -> None:
    """Review decisions, keyed by content so they survive renames, moves and rescans; the views apply them."""
    db.executescript(
        """
        -- kind 'not-duplicates': hash_a < hash_b, the two images are distinct photos
        -- kind 'keep': hash_a is a pinned keeper (path_a: the copy pinned, when byte copies exist)
        -- kind 'reference': path_a is a reference folder (its images are kept, never acted on)
        -- a decision taken back or replaced keeps its row, with revoked_at (and replaced_by) set
        CREATE TABLE decisions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL CHECK (kind IN ('not-duplicates', 'keep', 'reference')),
            hash_a TEXT,
            hash_b TEXT,
            path_a TEXT,
            path_b TEXT,
            created_at TEXT NOT NULL,
            note TEXT,
            revoked_at TEXT,
            replaced_by INTEGER REFERENCES decisions(id)
        );
        CREATE INDEX decisions_pairs ON decisions(hash_a, hash_b)
            WHERE kind = 'not-duplicates' AND revoked_at IS NULL;
        CREATE INDEX decisions_active ON decisions(kind, hash_a) WHERE revoked_at IS NULL;
        -- why a member is kept: 'rule' (the keeper rule chose it), 'pinned', 'reference'; NULL: acted on
        ALTER TABLE group_members ADD COLUMN keep_reason TEXT;
        UPDATE group_members SET keep_reason = 'rule' WHERE is_keeper = 1;
        ALTER TABLE searches ADD COLUMN reference TEXT;
        ALTER TABLE searches ADD COLUMN keep_rule TEXT;
        ALTER TABLE searches ADD COLUMN decisions_version INTEGER;
        ALTER TABLE searches ADD COLUMN set_aside INTEGER;
        CREATE VIEW reference_images AS
            SELECT i.id AS image_id, i.path, r.path_a AS reference, r.id AS decision_id
            FROM decisions r
            JOIN images i ON i.folder = r.path_a
                OR substr(i.folder, 1, length(rtrim(r.path_a, '/')) + 1) = rtrim(r.path_a, '/') || '/'
            WHERE r.kind = 'reference' AND r.revoked_at IS NULL;
        CREATE VIEW decided_images AS
            SELECT d.id AS decision_id, d.kind, i.id AS image_id, i.path, d.created_at, d.note
            FROM decisions d JOIN images i ON i.content_hash = d.hash_a
            WHERE d.revoked_at IS NULL AND d.kind IN ('not-duplicates', 'keep')
            UNION ALL
            SELECT d.id, d.kind, i.id, i.path, d.created_at, d.note
            FROM decisions d JOIN images i ON i.content_hash = d.hash_b
            WHERE d.revoked_at IS NULL AND d.kind = 'not-duplicates'
            UNION ALL
            SELECT r.decision_id, 'reference', r.image_id, r.path, d.created_at, d.note
            FROM reference_images r JOIN decisions d ON d.id = r.decision_id;
        -- pairs set aside by decisions (not duplicates; both in reference folders) are not shown
        DROP VIEW match_pairs;
        CREATE VIEW match_pairs AS
            SELECT a.path AS path_a, b.path AS path_b, p.mse, p.rotation, p.mirrored, p.found_at,
                   p.image_a, p.image_b, p.search_id
            FROM pairs p
            JOIN images a ON a.id = p.image_a
            JOIN images b ON b.id = p.image_b
            WHERE p.search_id = (SELECT id FROM latest_search)
              AND NOT EXISTS (
                  SELECT 1 FROM decisions d
                  WHERE d.kind = 'not-duplicates' AND d.revoked_at IS NULL
                    AND d.hash_a = min(a.content_hash, b.content_hash)
                    AND d.hash_b = max(a.content_hash, b.content_hash))
              AND NOT (p.image_a IN (SELECT image_id FROM reference_images)
                       AND p.image_b IN (SELECT image_id FROM reference_images));
        DROP VIEW match_groups;
        CREATE VIEW match_groups AS
            SELECT g.group_id, i.path, g.is_keeper, i.width, i.height, i.size, i.folder, i.format,
                   g.mse_to_keeper, g.rotation, g.mirrored, g.root, g.image_id, g.search_id, g.keep_reason
            FROM group_members g
            JOIN images i ON i.id = g.image_id
            WHERE g.search_id = (SELECT id FROM latest_search);
        """
    )


@MIGRATIONS(name="0009_reviews")
def reviews(db: Database) -> None:
    """Groups a user looked at and accepted as they are, keyed by the content of their members."""
    db.executescript(
        """
        -- members: SHA-256 of the sorted distinct content hashes of the group's members, joined by ','
        -- (a rename or a move keeps the mark; a new copy joining the group makes it a new group to review)
        CREATE TABLE reviews (
            members TEXT PRIMARY KEY,
            reviewed_at TEXT NOT NULL,
            paths TEXT NOT NULL  -- JSON: the members' paths when marked, for the record
        );
        """
    )


@MIGRATIONS(name="0010_search_keys_orbits")
def search_keys_orbits(db: Database) -> None:
    """The point each image is in the comparer's search space (``compare.space``), kept so a search
    against a million images reads 300 bytes an image to plan, not its 600-byte coarse vector."""
    db.executescript(
        """
        -- orbits: float32 orbit features of the coarse vector (compare.space.orbit_features);
        -- NULL until a search needs it (computed from coarse, no tensor read)
        ALTER TABLE search_keys ADD COLUMN orbits BLOB;
        -- sample: uint8 every fourth row and column of the tensor, from both edges (kernel.sample):
        -- the SSD of two samples bounds the pair's SSD from below; NULL until a search computes it
        ALTER TABLE search_keys ADD COLUMN sample BLOB;
        -- which images have all their keys, without reading a million 1.5 KB rows to find out
        CREATE INDEX search_keys_complete ON search_keys(image_id) WHERE sample IS NOT NULL;
        """
    )


_VISIBLE = "r.found_in <= s.id AND (r.gone_in IS NULL OR r.gone_in > s.id)"
# the row a search shows for (search, image): deleting it hides it from that search on (rows it found itself go)
_HIDE_GROUP_ROW = """
    UPDATE group_rows SET gone_in = OLD.search_id
     WHERE group_set = (SELECT pair_set FROM searches WHERE id = OLD.search_id) AND image_id = OLD.image_id
       AND found_in < OLD.search_id AND (gone_in IS NULL OR gone_in > OLD.search_id);
    DELETE FROM group_rows
     WHERE group_set = (SELECT pair_set FROM searches WHERE id = OLD.search_id) AND image_id = OLD.image_id
       AND found_in = OLD.search_id;
"""
_ADD_GROUP_ROW = """
    INSERT INTO group_rows (group_set, group_id, image_id, is_keeper, root, mse_to_keeper, rotation, mirrored,
                            keep_reason, found_in)
    VALUES ((SELECT pair_set FROM searches WHERE id = NEW.search_id), NEW.group_id, NEW.image_id, NEW.is_keeper,
            NEW.root, NEW.mse_to_keeper, NEW.rotation, NEW.mirrored, NEW.keep_reason, NEW.search_id);
"""
_HIDE_PAIR_ROW = """
    UPDATE pair_rows SET gone_in = OLD.search_id
     WHERE pair_set = (SELECT pair_set FROM searches WHERE id = OLD.search_id) AND image_a = OLD.image_a
       AND image_b = OLD.image_b AND found_in < OLD.search_id AND (gone_in IS NULL OR gone_in > OLD.search_id);
    DELETE FROM pair_rows
     WHERE pair_set = (SELECT pair_set FROM searches WHERE id = OLD.search_id) AND image_a = OLD.image_a
       AND image_b = OLD.image_b AND found_in = OLD.search_id;
"""
_ADD_PAIR_ROW = """
    INSERT INTO pair_rows (pair_set, image_a, image_b, mse, rotation, mirrored, found_at, found_in)
    VALUES ((SELECT pair_set FROM searches WHERE id = NEW.search_id), NEW.image_a, NEW.image_b, NEW.mse,
            NEW.rotation, NEW.mirrored, NEW.found_at, NEW.search_id);
"""
_BUMP = "UPDATE searches SET revision = revision + 1 WHERE id = {}.search_id;"
# a group whose member leaves the index or changes (a fact the keeper rule reads) is made again
# by the next incremental search of each chain
_STALE = """
    INSERT OR IGNORE INTO stale_groups (group_set, group_id)
    SELECT group_set, group_id FROM group_rows WHERE image_id = {}.id AND gone_in IS NULL;
"""


@MIGRATIONS(name="0011_shared_rows")
def shared_rows(db: Database) -> None:
    """Searches share their unchanged rows: an incremental search adds the pairs and groups that
    changed and hides those that went, instead of copying a million rows (``compare.persist``).
    ``pairs`` and ``group_members`` become views with the same columns, and writable as before."""
    db.executescript(
        f"""
        -- chain: the searches that build on one another (each incremental search on the latest) share
        -- the rows of their chain's first search: pair_set is its id. revision counts edits of a
        -- search's groups after it finished (decisions, actions): a search building on it checks it.
        ALTER TABLE searches ADD COLUMN pair_set INTEGER;
        ALTER TABLE searches ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
        UPDATE searches SET pair_set = id;
        -- a row belongs to the searches of its chain from found_in (included) to gone_in (excluded)
        CREATE TABLE pair_rows (
            pair_set INTEGER NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
            image_a INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            image_b INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            mse REAL NOT NULL,
            rotation INTEGER NOT NULL,
            mirrored INTEGER NOT NULL,
            found_at TEXT NOT NULL,
            found_in INTEGER NOT NULL,
            gone_in INTEGER,
            PRIMARY KEY (pair_set, image_a, image_b, found_in)
        ) WITHOUT ROWID;
        INSERT INTO pair_rows SELECT search_id, image_a, image_b, mse, rotation, mirrored, found_at, search_id, NULL
            FROM pairs;
        CREATE INDEX pair_rows_image_a ON pair_rows(image_a);
        CREATE INDEX pair_rows_image_b ON pair_rows(image_b);
        CREATE TABLE group_rows (
            group_set INTEGER NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
            group_id INTEGER NOT NULL,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            is_keeper INTEGER NOT NULL,
            root TEXT,
            mse_to_keeper REAL,
            rotation INTEGER,
            mirrored INTEGER,
            keep_reason TEXT,
            found_in INTEGER NOT NULL,
            gone_in INTEGER,
            PRIMARY KEY (group_set, group_id, image_id, found_in)
        ) WITHOUT ROWID;
        INSERT INTO group_rows SELECT search_id, group_id, image_id, is_keeper, root, mse_to_keeper, rotation,
            mirrored, keep_reason, search_id, NULL FROM group_members;
        CREATE INDEX group_rows_image ON group_rows(image_id);
        CREATE TABLE stale_groups (
            group_set INTEGER NOT NULL REFERENCES searches(id) ON DELETE CASCADE,
            group_id INTEGER NOT NULL,
            PRIMARY KEY (group_set, group_id)
        ) WITHOUT ROWID;
        DROP VIEW match_pairs;
        DROP VIEW match_groups;
        DROP TABLE pairs;
        DROP TABLE group_members;
        -- a pair is stored once, lower image id first; b = T(a) with T = (mirrored, rotation)
        CREATE VIEW pairs AS
            SELECT s.id AS search_id, r.image_a, r.image_b, r.mse, r.rotation, r.mirrored, r.found_at
            FROM searches s JOIN pair_rows r ON r.pair_set = s.pair_set
            WHERE {_VISIBLE};
        CREATE VIEW group_members AS
            SELECT s.id AS search_id, r.group_id, r.image_id, r.is_keeper, r.root, r.mse_to_keeper, r.rotation,
                   r.mirrored, r.keep_reason
            FROM searches s JOIN group_rows r ON r.group_set = s.pair_set
            WHERE {_VISIBLE};
        CREATE TRIGGER pairs_insert INSTEAD OF INSERT ON pairs BEGIN {_ADD_PAIR_ROW} END;
        CREATE TRIGGER pairs_delete INSTEAD OF DELETE ON pairs BEGIN {_HIDE_PAIR_ROW} END;
        CREATE TRIGGER pairs_update INSTEAD OF UPDATE ON pairs BEGIN {_HIDE_PAIR_ROW} {_ADD_PAIR_ROW} END;
        CREATE TRIGGER group_members_insert INSTEAD OF INSERT ON group_members
            BEGIN {_ADD_GROUP_ROW} {_BUMP.format("NEW")} END;
        CREATE TRIGGER group_members_delete INSTEAD OF DELETE ON group_members
            BEGIN {_HIDE_GROUP_ROW} {_BUMP.format("OLD")} END;
        CREATE TRIGGER group_members_update INSTEAD OF UPDATE ON group_members
            BEGIN {_HIDE_GROUP_ROW} {_ADD_GROUP_ROW} {_BUMP.format("OLD")} END;
        CREATE TRIGGER images_gone BEFORE DELETE ON images BEGIN {_STALE.format("OLD")} END;
        CREATE TRIGGER images_changed AFTER UPDATE OF path, folder, size, mtime_ns, width, height, format
            ON images BEGIN {_STALE.format("NEW")} END;
        -- moved images are compared again: found without reading every row
        CREATE INDEX images_moved_at ON images(moved_at) WHERE moved_at IS NOT NULL;
        CREATE VIEW match_pairs AS
            SELECT a.path AS path_a, b.path AS path_b, p.mse, p.rotation, p.mirrored, p.found_at,
                   p.image_a, p.image_b, p.search_id
            FROM pairs p
            JOIN images a ON a.id = p.image_a
            JOIN images b ON b.id = p.image_b
            WHERE p.search_id = (SELECT id FROM latest_search)
              AND NOT EXISTS (
                  SELECT 1 FROM decisions d
                  WHERE d.kind = 'not-duplicates' AND d.revoked_at IS NULL
                    AND d.hash_a = min(a.content_hash, b.content_hash)
                    AND d.hash_b = max(a.content_hash, b.content_hash))
              AND NOT (p.image_a IN (SELECT image_id FROM reference_images)
                       AND p.image_b IN (SELECT image_id FROM reference_images));
        CREATE VIEW match_groups AS
            SELECT g.group_id, i.path, g.is_keeper, i.width, i.height, i.size, i.folder, i.format,
                   g.mse_to_keeper, g.rotation, g.mirrored, g.root, g.image_id, g.search_id, g.keep_reason
            FROM group_members g
            JOIN images i ON i.id = g.image_id
            WHERE g.search_id = (SELECT id FROM latest_search);
        -- the point index (compare.points): fixed principal axes of the orbit features (center,
        -- axes), a grid of cells of side ``side`` over the first four from ``origin``, and each
        -- image's cell with its first 32 coordinates (float32), so a few new images find their
        -- neighbours in a few ranges of cells instead of reading a million rows
        CREATE TABLE search_space (
            px_size INTEGER PRIMARY KEY,
            center BLOB NOT NULL,
            axes BLOB NOT NULL,
            origin BLOB NOT NULL,
            side REAL NOT NULL,
            fitted_at TEXT NOT NULL
        );
        CREATE TABLE search_points (
            cell INTEGER NOT NULL,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            coords BLOB NOT NULL,
            PRIMARY KEY (cell, image_id)
        ) WITHOUT ROWID;
        CREATE INDEX search_points_image ON search_points(image_id);
        """
    )


@MIGRATIONS(name="0012_executor")
def executor(db: Database) -> None:
    """What ran each scan's and search's work: the local pool or a Dask cluster (``imgindex status``)."""
    db.executescript(
        """
        -- 'local pool (2 processes)', 'dask local (2 workers)', 'dask tcp://host:8786 (8 workers)';
        -- NULL for runs recorded before this column existed (all of them local)
        ALTER TABLE scans ADD COLUMN executor TEXT;
        ALTER TABLE searches ADD COLUMN executor TEXT;
        """
    )


_ADD_PAIR_ROW_SIGNAL = """
    INSERT INTO pair_rows (pair_set, image_a, image_b, mse, rotation, mirrored, found_at, found_in, signal, score)
    VALUES ((SELECT pair_set FROM searches WHERE id = NEW.search_id), NEW.image_a, NEW.image_b, NEW.mse,
            NEW.rotation, NEW.mirrored, NEW.found_at, NEW.search_id, NEW.signal, NEW.score);
"""


@MIGRATIONS(name="0013_signals")
def signals(db: Database) -> None:
    """Which signal matched each pair and its score (``compare.signals``), the signals a search ran
    with, the tone keys cached per image and the trimmed tensors made at decode time; ``pairs``
    and ``match_pairs`` gain the two columns."""
    db.executescript(
        f"""
        -- signal: 'pixels' (MSE within the threshold) or 'tone' (the pattern of light and dark,
        -- brightness and contrast taken out, checked block by block); NULL: found before signals
        -- existed (pixels). score: that signal's score (pixels: the MSE; tone: 0..2, 0 the same)
        ALTER TABLE pair_rows ADD COLUMN signal TEXT;
        ALTER TABLE pair_rows ADD COLUMN score REAL;
        -- the signals a search ran with, as a JSON list; NULL: pixels only (searches before 0013)
        ALTER TABLE searches ADD COLUMN signals TEXT;
        -- tone keys of each image, from its tensor: block sums of its tone (compare.signals.coarse),
        -- float64; an empty blob when the image is too flat to have a tone. recipe: how they were made
        CREATE TABLE tone_keys (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            recipe TEXT NOT NULL,
            coarse BLOB NOT NULL
        );
        -- the same for the rank signal (the tone of the luminance's ranks)
        CREATE TABLE rank_keys (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            recipe TEXT NOT NULL,
            coarse BLOB NOT NULL
        );
        -- the tensor of the picture inside uniform borders (scan.decode.content_box), made at decode
        -- time; tensor NULL: the image was looked at and has no borders; no row: indexed before
        -- borders were looked for (imgindex scan --refresh-signals). recipe: how borders were found;
        -- inner_width, inner_height: the size of the picture inside them, in the file's pixels
        CREATE TABLE trimmed_tensors (
            image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
            recipe TEXT NOT NULL,
            px_size INTEGER NOT NULL,
            tensor BLOB,
            inner_width INTEGER,
            inner_height INTEGER
        );
        DROP VIEW match_pairs;
        DROP VIEW pairs;
        CREATE VIEW pairs AS
            SELECT s.id AS search_id, r.image_a, r.image_b, r.mse, r.rotation, r.mirrored, r.found_at,
                   coalesce(r.signal, 'pixels') AS signal, coalesce(r.score, r.mse) AS score
            FROM searches s JOIN pair_rows r ON r.pair_set = s.pair_set
            WHERE {_VISIBLE};
        CREATE TRIGGER pairs_insert INSTEAD OF INSERT ON pairs BEGIN {_ADD_PAIR_ROW_SIGNAL} END;
        CREATE TRIGGER pairs_delete INSTEAD OF DELETE ON pairs BEGIN {_HIDE_PAIR_ROW} END;
        CREATE TRIGGER pairs_update INSTEAD OF UPDATE ON pairs BEGIN {_HIDE_PAIR_ROW} {_ADD_PAIR_ROW_SIGNAL} END;
        CREATE VIEW match_pairs AS
            SELECT a.path AS path_a, b.path AS path_b, p.mse, p.rotation, p.mirrored, p.found_at,
                   p.image_a, p.image_b, p.search_id, p.signal, p.score
            FROM pairs p
            JOIN images a ON a.id = p.image_a
            JOIN images b ON b.id = p.image_b
            WHERE p.search_id = (SELECT id FROM latest_search)
              AND NOT EXISTS (
                  SELECT 1 FROM decisions d
                  WHERE d.kind = 'not-duplicates' AND d.revoked_at IS NULL
                    AND d.hash_a = min(a.content_hash, b.content_hash)
                    AND d.hash_b = max(a.content_hash, b.content_hash))
              AND NOT (p.image_a IN (SELECT image_id FROM reference_images)
                       AND p.image_b IN (SELECT image_id FROM reference_images));
        """
    )


@MIGRATIONS(name="0014_timings")
def timings(db: Database) -> None:
    """Where each scan's and search's time went (``ScanTimings``, ``SearchTimings``): what a
    newcomer needs to see the decode bound, and what a benchmark prints."""
    db.executescript(
        """
        -- JSON: {"total", "walk", "write"} (this process's wall seconds) and {"hash", "decode", "keys"}
        -- (CPU seconds summed over the reading processes); NULL for scans recorded before this column
        ALTER TABLE scans ADD COLUMN timings TEXT;
        -- JSON: {"total", "pixels", "signals", "groups"}, wall seconds; NULL before this column
        ALTER TABLE searches ADD COLUMN timings TEXT;
        """
    )


@MIGRATIONS(name="0015_signal_points")
def signal_points(db: Database) -> None:
    """The tone and rank point index (``compare.tone_points``): a few new images find the images
    within their box without reading every image's keys."""
    db.executescript(
        """
        -- per signal recipe (tone_keys.recipe, rank_keys.recipe): the order of the tone point's feature
        -- axes, most spread first (int64), fitted at `threshold`, and the origin (float64) of a grid of
        -- cells over the first five; each image's cell and all its coordinates (float32). An image
        -- with no tone has no point.
        CREATE TABLE signal_space (
            recipe TEXT PRIMARY KEY,
            px_size INTEGER NOT NULL,
            threshold REAL NOT NULL,
            axes BLOB NOT NULL,
            origin BLOB NOT NULL,
            fitted_at TEXT NOT NULL
        );
        CREATE TABLE signal_points (
            recipe TEXT NOT NULL,
            cell INTEGER NOT NULL,
            image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,
            coords BLOB NOT NULL,
            PRIMARY KEY (recipe, cell, image_id)
        ) WITHOUT ROWID;
        CREATE INDEX signal_points_image ON signal_points(image_id);
        """
    )
