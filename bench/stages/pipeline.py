"""``pipeline``: training throughput of our input pipeline, the book's, and compute alone,
side by side, for a small, a middle and a large input."""

from __future__ import annotations

from dataclasses import dataclass

from bench.console import Progress
from bench.device import backend_for
from bench.executors import Job, dispatch
from bench.isolation import Row
from bench.schema import FAILED, Status
from bench.stages.common import (
    Command,
    OnData,
    UsageError,
    all_stored,
    device_of,
    option,
    seconds,
    select_models,
    timeout_option,
)
from bench.store import Store
from bench.training.feeds import FEEDS, PIPELINE_CASES, feed_throughputs


@dataclass(frozen=True)
class Settings(OnData):
    seconds: float = option(5.0, "per network and feed", parse=seconds)
    timeout: float = timeout_option(600, "network")


def run(s: Settings) -> int:
    """Each case's feeds not yet in the store, timed and stored."""
    device = device_of(s)
    s.data()  # fail fast, in one line, if the data is missing
    device_name, store = backend_for(device).name, Store(s.store)
    cases = [(m, r) for m, r in PIPELINE_CASES if m in select_models(s.models)]
    if not cases:
        raise UsageError(f"the pipeline cases are {', '.join(m for m, _ in PIPELINE_CASES)}")
    keys = [(m, r, {"resize": r, "device": device_name, "seconds": s.seconds}) for m, r in cases]
    todo = [
        (m, r, key)
        for m, r, key in keys
        if not all(store.has("pipeline", m, {**key, "feed": f}) for f in FEEDS)
    ]
    if not todo:
        all_stored("pipeline", "feed", store)
    jobs = [
        Job(
            feed_throughputs,
            dict(model_name=m, resize=r, data_dir=s.data_dir, device=s.device, seconds=s.seconds),
            s.timeout,
        )
        for m, r, _ in todo
    ]
    with Progress("pipeline", len(todo) * len(FEEDS)) as progress:

        def stored(index: int, message: Row) -> None:
            model, resize, key = todo[index]
            for row in message.value:  # a network's feeds take turns: stored together
                feed = {**key, "feed": row["feed"]}
                store.put("pipeline", model, feed, row, origin=message.origin)
                progress.item(
                    f"{model} at {resize or 28} px, {row['feed']}: "
                    f"{row['images_per_s']:,.0f} images/s"
                )

        def ended(index: int, status: Status, note: str) -> None:
            model, resize, _ = todo[index]
            if status in FAILED:
                progress.item(f"{model} at {resize or 28} px: {note}")

        failures = dispatch(s.runner(device), jobs, stored, ended)
    store.close()
    return 1 if failures else 0


COMMAND = Command("pipeline", "input pipelines against compute alone", Settings, run)
