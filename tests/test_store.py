"""The results store: keys, round trips, provenance, and all-or-nothing writes."""

import pytest

from bench.store import Store, config_hash


def test_config_hash_ignores_key_order():
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def test_round_trip_with_details_and_provenance(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    config = {"image_size": 28, "batch_size": 4}
    store.put("profile", "lenet", config, {"params": 61706}, details={"layers": [{"layer": "0"}]})
    assert store.has("profile", "lenet", config)
    assert not store.has("profile", "lenet", {**config, "batch_size": 8})
    (row,) = store.rows("profile")
    assert row["params"] == 61706 and row["status"] == "ok" and row["config"] == config
    assert row["provenance"]["torch"] and row["provenance"]["cpu"] and row["provenance"]["date"]
    assert store.details("profile", "lenet", config, "layers") == [{"layer": "0"}]
    assert store.details("profile", "lenet", config, "ops") == []


def test_a_newer_row_replaces_the_older_one(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    store.put("profile", "lenet", {}, {"error": "boom"}, status="error")
    assert not store.has("profile", "lenet", {})
    store.put("profile", "lenet", {}, {"params": 1})
    assert [r["status"] for r in store.rows("profile")] == ["ok"]


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    store = Store(tmp_path / "r.sqlite")
    with pytest.raises(TypeError):
        store.put("profile", "lenet", {}, {"params": 1}, details={"layers": [{"x": object()}]})
    assert store.rows("profile") == []
    store.close()
    assert Store(tmp_path / "r.sqlite").rows("profile") == []
