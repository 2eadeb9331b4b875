"""The store's record of the commands that changed it: each command that writes or deletes rows
adds one row to the store's ``commands`` table as it ends, however it ends, and a run folder's
``history.md`` is rendered from them."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.provenance import provenance
from bench.stages.common import UsageError
from bench.store import Store, StoreError


def _versions(path: Path) -> dict:
    """The versions of the rows of the store at ``path`` (none if there is no store)."""
    if not path.is_file():
        return {}
    store = Store(path, create=False)
    versions = store.versions()
    store.close()
    return versions


def recorded(run: Callable[[Any], int], settings: Any, argv: list[str]) -> tuple[int, bool]:
    """``run(settings)``'s exit code, and whether it changed the store; where it wrote or
    deleted rows, it is recorded in the store as it ends, however it ends: its command line,
    times, exit status, rows and the code and machine that ran it."""
    started, before, code, changed = provenance()["date"], _versions(settings.store), 1, False
    try:
        code = run(settings)
    except KeyboardInterrupt:
        code = 130
        raise
    except (UsageError, StoreError, OSError):
        code = 2
        raise
    finally:
        # a store that cannot be read has its own error on the way already
        with contextlib.suppress(StoreError):
            if settings.store.is_file():
                after = _versions(settings.store)
                written = sum(before.get(key) != version for key, version in after.items())
                deleted = len(before.keys() - after.keys())
                changed = bool(written or deleted)
                if changed:
                    store = Store(settings.store, create=False)
                    store.log_command(argv, started, code, written, deleted)
                    store.close()
    return code, changed
