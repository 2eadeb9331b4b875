"""Micro-benchmark results also go to the results store (stage "microbench"): this machine's
default run folder (reports/cpu-<device>/ on a CPU), or $CNNBENCH_STORE."""

import os
from pathlib import Path

from bench import runs
from bench.device import backend_for, resolve_device
from bench.store import Store

DEVICE = resolve_device("auto")
STORE = Path(
    os.environ.get("CNNBENCH_STORE")
    or runs.folder(runs.default_preset(DEVICE), backend_for(DEVICE).name) / runs.STORE_NAME
)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Store each benchmark's timing distribution when pytest-benchmark writes its JSON."""
    store = Store(STORE)
    for bench in output_json["benchmarks"]:
        stats = bench["stats"]
        row = {
            "name": bench["name"],
            "group": bench["group"],
            "params": bench["params"],
            **{k: stats[k] for k in ("rounds", "median", "iqr", "mean", "stddev", "min", "max")},
            "cv": stats["stddev"] / stats["mean"],
            **bench["extra_info"],
        }
        store.put("microbench", bench["group"], {"name": bench["name"]}, row)
    store.close()
