"""Rendering: pages, plots, exercise answers and HTML, read from a results store and nothing
else. ``format`` holds what every page shares; ``stages`` the pages of the measuring stages,
``training`` the training page, ``headline`` the index, tradeoffs and the per-network headline
table; ``plots``, ``exercises`` and ``html`` the rest."""
