"""Provenance is data: every command that changes a store records itself there, rows leave a
store only through ``prune``, and history.md is rendered from those records."""

import dataclasses

from bench.cli import main
from bench.schema import Status
from bench.stages import COMMANDS
from bench.store import Store


def _commands(folder):
    store = Store(folder / "results.sqlite", create=False)
    commands = store.commands()
    store.close()
    return commands


def test_a_command_that_writes_records_itself_and_one_that_finds_all_stored_does_not(tmp_path):
    argv = ["profile", "--models", "lenet", "--workers", "1", "--out", str(tmp_path)]
    assert main(argv) == 0
    (command,) = _commands(tmp_path)
    assert command["argv"] == ["python", "-m", "bench", *argv]
    assert (command["exit"], command["rows_written"], command["rows_deleted"]) == (0, 1, 0)
    assert command["started"] <= command["ended"]
    assert {"git_sha", "git_dirty", "host", "cpu", "device"} <= set(command["provenance"])
    assert main(argv) == 0  # everything stored already: the store stays as it was
    assert len(_commands(tmp_path)) == 1
    history = (tmp_path / "history.md").read_text()
    assert f"`python -m bench profile --models lenet --workers 1 --out {tmp_path}`" in history
    assert "history.md" in (tmp_path / "index.md").read_text()


def test_an_interrupted_command_is_recorded_with_what_it_wrote(tmp_path, monkeypatch, full_row):
    def interrupted(settings):
        store = Store(settings.store)
        store.put("profile", "lenet", {"image_size": 28}, full_row("profile"))
        store.close()
        raise KeyboardInterrupt

    monkeypatch.setitem(
        COMMANDS, "profile", dataclasses.replace(COMMANDS["profile"], run=interrupted)
    )
    assert main(["profile", "--out", str(tmp_path)]) == 130
    (command,) = _commands(tmp_path)
    assert (command["exit"], command["rows_written"]) == (130, 1)


def test_prune_deletes_only_what_it_is_asked_and_is_recorded(tmp_path, capsys):
    store = Store(tmp_path / "results.sqlite")
    for model, status in (("a", Status.ERROR), ("b", Status.ERROR), ("c", Status.OK)):
        row = {"median_ms": 1.0} if status == Status.OK else {"error": "boom"}
        store.put("layers", model, {"case": "x"}, row, status=status)
    store.close()

    def left():
        return {r["model"] for r in Store(tmp_path / "results.sqlite").rows("layers")}

    assert main(["prune", str(tmp_path), "--stage", "layers", "--models", "a"]) == 0
    assert left() == {"b", "c"}  # the error row of a alone
    assert "1 row of layers deleted" in capsys.readouterr().out
    assert main(["prune", str(tmp_path), "--stage", "layers"]) == 0  # failures by default
    assert left() == {"c"}
    assert main(["prune", str(tmp_path), "--stage", "layers", "--status", "ok"]) == 0
    assert left() == set()
    assert [(c["rows_deleted"], c["rows_written"]) for c in _commands(tmp_path)] == [
        (1, 0),
        (1, 0),
        (1, 0),
    ]
    assert main(["prune", str(tmp_path)]) == 2  # which stage: one line, not a guess


def test_prune_deletes_the_rows_whose_settings_hold_where_asked(tmp_path, capsys):
    """One seed of a run, say, measured while the machine was busy."""
    store = Store(tmp_path / "results.sqlite")
    for seed, batch in ((0, 128), (1, 128), (1, 256)):
        store.put("layers", "a", {"seed": seed, "batch_size": batch}, {"median_ms": 1.0})
    store.close()
    where = ["--where", "seed=1", "batch_size=128"]
    assert main(["prune", str(tmp_path), "--stage", "layers", "--status", "ok", *where]) == 0
    left = Store(tmp_path / "results.sqlite").rows("layers")
    assert sorted((r["config"]["seed"], r["config"]["batch_size"]) for r in left) == [
        (0, 128),
        (1, 256),
    ]
    assert main(["prune", str(tmp_path), "--stage", "layers", "--where", "seed"]) == 2
    assert capsys.readouterr().err.strip().endswith("--where takes KEY=VALUE, got 'seed'")


def test_history_groups_rows_no_command_recorded(tmp_path, full_row):
    from bench.render.history import write_history

    store = Store(tmp_path / "results.sqlite")
    for model in ("lenet", "bn_lenet"):
        store.put("profile", model, {"image_size": 28}, full_row("profile", model=model))
    (page,) = write_history(store, tmp_path)
    text = page.read_text()
    assert "No command is recorded." in text
    (line,) = [row for row in text.splitlines() if "| profile |" in row]
    assert line.endswith("| 2 |")  # both rows, one group: same day, stage, commit and machine
