"""The results store: keys, round trips, provenance, and all-or-nothing writes."""

import pytest

from bench.store import Store, config_hash


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_round_trip_with_details_and_provenance(tmp_path, full_row):
    store = Store(tmp_path / "r.sqlite")
    config = {"image_size": 28, "batch_size": 4}
    store.put(
        "profile",
        "lenet",
        config,
        full_row("profile", params=61706),
        details={"layers": [{"layer": "0"}]},
    )
    assert store.has("profile", "lenet", config)
    assert not store.has("profile", "lenet", {**config, "batch_size": 8})
    (row,) = store.rows("profile")
    assert row["params"] == 61706 and row["status"] == "ok" and row["config"] == config
    assert row["provenance"]["torch"] and row["provenance"]["cpu"] and row["provenance"]["date"]
    assert store.details("profile", "lenet", config, "layers") == [{"layer": "0"}]
    assert store.details("profile", "lenet", config, "ops") == []


def test_a_newer_row_replaces_the_older_one(tmp_path, full_row):
    store = Store(tmp_path / "r.sqlite")
    store.put("profile", "lenet", {}, {"error": "boom"}, status="error")
    assert not store.has("profile", "lenet", {})
    store.put("profile", "lenet", {}, full_row("profile", params=1))
    assert [r["status"] for r in store.rows("profile")] == ["ok"]


def test_a_failed_write_leaves_nothing_behind(tmp_path, full_row):
    store = Store(tmp_path / "r.sqlite")
    with pytest.raises(TypeError):
        store.put(
            "profile",
            "lenet",
            {},
            full_row("profile", params=1),
            details={"layers": [{"x": object()}]},
        )
    assert store.rows("profile") == []
    store.close()
    assert Store(tmp_path / "r.sqlite").rows("profile") == []


def test_rows_are_checked_against_their_stages_schema(tmp_path, full_row):
    store = Store(tmp_path / "r.sqlite")
    with pytest.raises(ValueError, match="a profile row \\(ok\\) has no: fwd_macs_per_image"):
        store.put(
            "profile",
            "lenet",
            {},
            {k: v for k, v in full_row("profile").items() if k != "fwd_macs_per_image"},
        )
    with pytest.raises(ValueError, match="fields its schema lacks: tricks"):
        store.put("train", "lenet", {}, {**full_row("train"), "tricks": "-"})
    with pytest.raises(ValueError, match="no schema for rows of stage 'speeds'"):
        store.put("speeds", "lenet", {}, {})
    store.put("speed", "lenet", {}, {"batch_size": 1, "note": "killed"}, status="timeout")
    assert [(r["stage"], r["status"]) for r in store.rows()] == [("speed", "timeout")]


def test_a_store_of_another_layout_is_refused_in_one_line(tmp_path):
    import sqlite3

    from bench.store import VERSION, StoreError

    path = tmp_path / "r.sqlite"
    Store(path).put("layers", "7.3.1", {}, {"params": 1})
    database = sqlite3.connect(path)
    database.execute("PRAGMA user_version = 1")
    database.commit()
    database.close()
    with pytest.raises(
        StoreError, match=f"rows of layout 1, and this cnnbench reads layout {VERSION}"
    ):
        Store(path)


def test_a_store_of_layout_4_is_brought_up_to_date_as_it_opens(tmp_path, full_row):
    import sqlite3

    from bench.store import VERSION

    path = tmp_path / "r.sqlite"
    store = Store(path)
    store.put("layers", "7.4.3", {"case": "base"}, {"median_ms": 1.0}, details={"t": [{"a": 1}]})
    store.put("speed", "lenet", {"batch_size": 1}, full_row("speed"))
    store.close()
    database = sqlite3.connect(path)  # as layout 4 wrote it: the single layers were "layers"
    for table in ("results", "details"):
        database.execute(f"UPDATE {table} SET stage = 'blocks' WHERE stage = 'layers'")
    database.execute("PRAGMA user_version = 4")
    database.commit()
    database.close()
    store = Store(path)
    assert sorted((r["stage"], r["model"]) for r in store.rows()) == [
        ("layers", "7.4.3"),
        ("speed", "lenet"),
    ]
    assert store.details("layers", "7.4.3", {"case": "base"}, "t") == [{"a": 1}]
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == VERSION
