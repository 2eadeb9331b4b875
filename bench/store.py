"""The results store: one flat row per (stage, model, config), with where it came from.

SQLite from the standard library: each write is one transaction, so an interrupted run leaves
every finished row intact and no row half-written. Rows are plain values (numbers, strings,
booleans, None); bytes are stored as bytes and only rendered tables convert units.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import sqlite3
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.provenance import environment, provenance
from bench.schema import Status, check

STORE_NAME = "results.sqlite"  # a run folder's store

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    row TEXT NOT NULL,
    provenance TEXT NOT NULL,
    PRIMARY KEY (stage, model, config_hash)
);
CREATE TABLE IF NOT EXISTS details (
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    config_hash TEXT NOT NULL,
    name TEXT NOT NULL,
    rows TEXT NOT NULL,
    PRIMARY KEY (stage, model, config_hash, name)
);
CREATE TABLE IF NOT EXISTS commands (
    started TEXT NOT NULL,
    ended TEXT NOT NULL,
    argv TEXT NOT NULL,
    exit INTEGER NOT NULL,
    rows_written INTEGER NOT NULL,
    rows_deleted INTEGER NOT NULL,
    provenance TEXT NOT NULL
);
"""


SQLITE_HEADER = b"SQLite format 3\0"
# The layout of rows (bench/schema.py) this code reads and writes, kept in SQLite's user_version
# (3: a training run's key names only the techniques switched on; 4: an onnx point's key names
# onnxruntime's provider, a timed single-layer case's its device; 5: chapter 7's single layers
# are the stage "layers", which 4 called "blocks").
VERSION = 5
# The statements that bring a store of an older layout up to VERSION as it is opened, by layout.
MIGRATIONS = {
    4: tuple(
        f"UPDATE {table} SET stage = 'layers' WHERE stage = 'blocks'"
        for table in ("results", "details")
    ),
}


class StoreError(Exception):
    """The store cannot be opened, read or written; the message names the file and what to do."""


def config_hash(config: dict[str, Any]) -> str:
    """A short, order-independent digest of a configuration."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


class Store:
    """Rows keyed by (stage, model, config hash), and named tables of detail rows beside them."""

    def __init__(self, path: str | os.PathLike, *, create: bool = True):
        """Open the store at ``path``; a missing one is created unless ``create`` is False."""
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a results store")
        if not self.path.exists():
            if not create:
                raise StoreError(f"{self.path}: no such file")
            with self._failing("create"):
                self._create()
        with open(self.path, "rb") as file:
            if file.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                raise StoreError(
                    f"{self.path} is not a results store (not an SQLite database); "
                    "move it away or pass another --store"
                )
        with self._failing("open"):
            self._db = sqlite3.connect(self.path)
            self._db.executescript(SCHEMA)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0 and not self._db.execute("SELECT 1 FROM results").fetchone():
                version = VERSION  # empty: any layout fits
                self._db.execute(f"PRAGMA user_version = {VERSION}")
            if version in MIGRATIONS:
                with self._db:  # one transaction
                    for statement in MIGRATIONS[version]:
                        self._db.execute(statement)
                    self._db.execute(f"PRAGMA user_version = {VERSION}")
                version = VERSION
        if version != VERSION:
            self._db.close()
            raise StoreError(
                f"{self.path} holds rows of layout {version}, and this cnnbench reads layout "
                f"{VERSION}; measure again into another --store"
            )

    def _create(self) -> None:
        """Make the empty store beside its path, then link it into place: a reader, or a run
        killed meanwhile, never finds a store without its tables (nor clobbers one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = self.path.with_name(f".{self.path.name}.{os.getpid()}.new")
        database = sqlite3.connect(fresh)
        database.executescript(SCHEMA)
        database.execute(f"PRAGMA user_version = {VERSION}")
        database.close()
        try:
            os.link(fresh, self.path)
        except FileExistsError:  # made by another process meanwhile
            pass
        finally:
            fresh.unlink()

    @contextlib.contextmanager
    def _failing(self, action: str) -> Iterator[None]:
        """Turn the database's and the file system's errors into one StoreError naming the file."""
        try:
            yield
        except (sqlite3.Error, OSError) as error:
            hint = (
                "free some disk space"
                if "full" in str(error) or getattr(error, "errno", 0) == errno.ENOSPC
                else "check that the file and its folder are writable"
            )
            raise StoreError(
                f"cannot {action} the results store {self.path}: {error}; {hint} "
                "(rows stored before are kept)"
            ) from None

    def close(self) -> None:
        self._db.close()

    def put(
        self,
        stage: str,
        model: str,
        config: dict[str, Any],
        row: dict[str, Any],
        *,
        status: str = Status.OK,
        details: dict[str, list[dict[str, Any]]] | None = None,
        origin: dict[str, Any] | None = None,
    ) -> None:
        """Write one row (replacing an earlier one for the same key) and its detail tables; a
        row that does not fit its stage's schema (bench/schema.py) is a ValueError. ``origin``:
        the host, device and code that measured it where that is not this process
        (``environment()`` in a child or on a Ray worker)."""
        check(stage, row, status)
        key = (stage, model, config_hash(config))
        with self._failing("write a row to"), self._db:  # one transaction: all or nothing
            self._db.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    *key,
                    json.dumps(config, sort_keys=True),
                    status,
                    json.dumps(row),
                    json.dumps({**provenance(), **(origin or {})}),
                ),
            )
            self._db.execute("DELETE FROM details WHERE stage=? AND model=? AND config_hash=?", key)
            for name, rows in (details or {}).items():
                self._db.execute(
                    "INSERT INTO details VALUES (?, ?, ?, ?, ?)", (*key, name, json.dumps(rows))
                )

    def has(
        self,
        stage: str,
        model: str,
        config: dict[str, Any],
        statuses: Collection[str] = (Status.OK,),
    ) -> bool:
        """Whether a row with one of these statuses is stored for the key."""
        found = self._query(
            "SELECT status FROM results WHERE stage=? AND model=? AND config_hash=?",
            (stage, model, config_hash(config)),
        )
        return found is not None and found[0] in statuses

    def get(self, stage: str, model: str, config: dict[str, Any]) -> dict[str, Any] | None:
        """The stored row for the key, with its status (None if there is none)."""
        found = self._query(
            "SELECT status, row FROM results WHERE stage=? AND model=? AND config_hash=?",
            (stage, model, config_hash(config)),
        )
        return None if found is None else {"status": found[0], **json.loads(found[1])}

    def rows(self, stage: str | None = None) -> list[dict]:
        """The stage's rows, each with its model, status, config and provenance, in the order
        they were stored; for None, every stage's, each with its stage too."""
        records = self._query(
            "SELECT stage, model, config, status, row, provenance FROM results "
            + ("WHERE stage=? " if stage else "")
            + "ORDER BY rowid",
            (stage,) if stage else (),
            every=True,
        )
        return [
            {
                "model": model,
                "status": status,
                "config": json.loads(config),
                "provenance": json.loads(prov),
                **json.loads(row),
                **({} if stage else {"stage": kind}),
            }
            for kind, model, config, status, row, prov in records
        ]

    def details(self, stage: str, model: str, config: dict[str, Any], name: str) -> list[dict]:
        """A detail table stored with a row (empty if there is none)."""
        found = self._query(
            "SELECT rows FROM details WHERE stage=? AND model=? AND config_hash=? AND name=?",
            (stage, model, config_hash(config), name),
        )
        return json.loads(found[0]) if found else []

    def versions(self) -> dict[tuple[str, str, str], str]:
        """Each stored row's key and a digest of what it holds and where it came from: two
        calls tell which rows were written, rewritten or deleted in between."""
        records = self._query(
            "SELECT stage, model, config_hash, row, provenance FROM results", (), every=True
        )
        return {
            (stage, model, digest): hashlib.sha256((row + prov).encode()).hexdigest()
            for stage, model, digest, row, prov in records
        }

    def delete(
        self,
        stage: str,
        models: Collection[str],
        statuses: Collection[str],
        config: Mapping[str, Any] | None = None,
    ) -> int:
        """Remove the stage's rows of ``models`` whose status is one of ``statuses`` and whose
        configuration holds ``config``, with their detail tables; how many rows were removed."""
        config = config or {}
        chosen = [
            (r["model"], config_hash(r["config"]))
            for r in self.rows(stage)
            if r["model"] in models
            and r["status"] in statuses
            and all(k in r["config"] and r["config"][k] == v for k, v in config.items())
        ]
        with self._failing("delete rows from"), self._db:
            for model, digest in chosen:
                for table in ("results", "details"):
                    self._db.execute(
                        f"DELETE FROM {table} WHERE stage=? AND model=? AND config_hash=?",
                        (stage, model, digest),
                    )
        return len(chosen)

    def log_command(
        self, argv: list[str], started: str, exit_code: int, written: int, deleted: int = 0
    ) -> None:
        """Record one command that changed the store: its command line, when it ran, how it
        ended, the rows it wrote and deleted, and the machine and code that ran it."""
        with self._failing("write a command to"), self._db:
            self._db.execute(
                "INSERT INTO commands VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    started,
                    provenance()["date"],
                    json.dumps(argv),
                    exit_code,
                    written,
                    deleted,
                    json.dumps(environment()),
                ),
            )

    def commands(self) -> list[dict[str, Any]]:
        """The commands that changed the store, oldest first."""
        records = self._query(
            "SELECT started, ended, argv, exit, rows_written, rows_deleted, provenance "
            "FROM commands ORDER BY rowid",
            (),
            every=True,
        )
        return [
            {
                "started": started,
                "ended": ended,
                "argv": json.loads(argv),
                "exit": code,
                "rows_written": written,
                "rows_deleted": deleted,
                "provenance": json.loads(prov),
            }
            for started, ended, argv, code, written, deleted, prov in records
        ]

    def _query(self, sql: str, parameters: tuple, every: bool = False) -> Any:
        with self._failing("read"):
            cursor = self._db.execute(sql, parameters)
            return cursor.fetchall() if every else cursor.fetchone()


@contextlib.contextmanager
def one_run_at_a_time(store: Path) -> Iterator[None]:
    """Hold the store's lock file for the whole run; a second run on it fails at once. The lock
    file is removed at the end, however the run ends (but for kill -9)."""
    lock_path = store.with_name(store.name + ".lock")
    store.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            lock = open(lock_path, "a+")  # noqa: SIM115 (held until the run ends)
        except OSError as error:
            raise StoreError(
                f"cannot create the lock file {lock_path}: {error.strerror}; "
                "pass a --store in a writable folder"
            ) from None
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            lock.close()
            raise StoreError(
                f"another run is using {store} (pid {holder}); wait for it to end"
            ) from None
        # the file may have been removed by the run that held it before: lock the current one
        if lock_path.exists() and os.stat(lock_path).st_ino == os.fstat(lock.fileno()).st_ino:
            break
        lock.close()
    try:
        lock.truncate(0)
        lock.write(str(os.getpid()))
        lock.flush()
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        lock.close()
