"""``peers``: what other FLOP counters (fvcore, FlopCounterMode, thop, ptflops, torchinfo) say
of each network, beside our count, and why they differ (peers.md)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.console import Progress
from bench.stages.common import Command, Networks, select_models, write_pages
from bench.store import Store


@dataclass(frozen=True)
class Settings(Networks):
    pass


def run(s: Settings) -> int:
    """Every selected network not yet in the store, counted by each peer, stored, rendered."""
    import archs
    from bench.peers import peer_row
    from bench.render.peers import write_peers

    store = Store(s.store)
    names = select_models(s.models)

    def key(name: str) -> dict:
        return {"batch_size": 1, "in_channels": archs.spec(name).in_channels, "mode": "eval",
                "image_size": archs.spec(name).image_size}  # fmt: skip

    todo = [n for n in names if not store.has("peers", n, key(n))]
    with Progress("peers", len(todo)) as progress:
        for name in todo:
            row = peer_row(name)
            store.put("peers", name, key(name), row)
            missing = [c["counter"] for c in row["counters"] if c["macs"] is None]
            progress.item(f"{name}: {len(row['counters']) - len(missing)} counters"
                          + (f" ({', '.join(missing)}: no figure)" if missing else ""))  # fmt: skip
    write_pages(store, write_peers, s.out)
    return 0


COMMAND = Command("peers", "other FLOP counters beside ours, and why they differ", Settings, run)
