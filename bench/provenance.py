"""Where a stored row comes from: the code (commit, uncommitted changes), packages, machine
(host, GPU, CPU and its vector instructions, the heap policy) and date."""

from __future__ import annotations

import datetime
import functools
import os
import platform
import socket
import subprocess
from pathlib import Path
from typing import Any

import torch

from bench.device import cpu_flags, cpu_model, keep_freed_memory, vector_isa


def provenance() -> dict[str, Any]:
    """Where a result came from: code version, packages, machine and date."""
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return {**environment(), "date": now}


@functools.cache
def environment() -> dict[str, Any]:
    """The machine and code of this process: what measured a row. A copy of the tree without
    git (as a GPU lease gets) names its commit in $CNNBENCH_COMMIT, and whether the tree had
    uncommitted changes in $CNNBENCH_DIRTY (1 or 0), as tools/gpu-check sets them."""
    sha = _git("rev-parse", "HEAD")
    if sha is None:
        sha, dirty = os.environ.get("CNNBENCH_COMMIT"), os.environ.get("CNNBENCH_DIRTY") == "1"
    else:
        dirty = bool(_git(*CODE_CHANGES))
    return {
        "host": socket.gethostname(),
        "git_sha": sha,
        "git_dirty": dirty,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.cuda.is_available() else None,
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "cpu": cpu_model(),
        "cpu_isa": vector_isa(cpu_flags()),
        "heap": keep_freed_memory(),  # what every measurement runs under (bench.device)
    }


def cpu_of(provenance: dict[str, Any]) -> str:
    """The CPU a row was measured on, in words: its name, and its vector instructions where
    the row records them (a virtual machine's CPU name may hide which it has)."""
    isa = provenance.get("cpu_isa")
    return f"{provenance['cpu']} ({isa})" if isa else provenance["cpu"]


# the code differs from its commit (the generated reports/ do not count)
CODE_CHANGES = (
    "status",
    "--porcelain",
    "--untracked-files=no",
    "--",
    ":/",
    ":(top,exclude)reports",
)


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
            cwd=Path(__file__).parent,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()
