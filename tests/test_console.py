"""What a run prints: a progress bar on a terminal, one line per item in a log; plurals."""

import io

from bench.console import Progress, plural


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_in_a_log_each_item_is_one_counted_line():
    log = io.StringIO()
    with Progress("speed", 2, log) as progress:
        progress.item("lenet infer batch 1: ok")
        progress.say("a note")
        progress.item("lenet infer batch 8: ok")
    assert (
        log.getvalue() == "[1/2] lenet infer batch 1: ok\na note\n[2/2] lenet infer batch 8: ok\n"
    )


def test_on_a_terminal_a_bar_counts_the_items_above_their_lines():
    terminal = Terminal()
    with Progress("speed", 2, terminal) as progress:
        progress.item("lenet infer batch 1: ok")
        progress.item("lenet infer batch 8: ok")
    shown = terminal.getvalue()
    assert "[1/2] lenet infer batch 1: ok" in shown and "[2/2] lenet infer batch 8: ok" in shown
    assert "speed: 100%" in shown and "2/2" in shown  # tqdm's bar, with its count


def test_plurals():
    assert [plural(n, "run") for n in (0, 1, 2, 1000)] == [
        "0 runs",
        "1 run",
        "2 runs",
        "1,000 runs",
    ]
    assert (
        plural(1, "batch", "batches") == "1 batch" and plural(3, "batch", "batches") == "3 batches"
    )
