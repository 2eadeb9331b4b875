"""``python -m bench``: the command line (``bench.cli``). A command that measures starts the
fork server of its children (``bench.children``) first, so that the server imports torch while
this process does, instead of after it."""

import signal
import sys

from bench.children import READING, children

if __name__ == "__main__":
    if sys.argv[1:2] and sys.argv[1] not in READING and not sys.argv[1].startswith("-"):
        children()
    # Ctrl-C, or `timeout -s INT`, ends a run and its children (which always obey it), keeping
    # what it stored, even where the run started with SIGINT ignored (a non-interactive
    # shell's background job)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from bench.cli import main

    sys.exit(main())
