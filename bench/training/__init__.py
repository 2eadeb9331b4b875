"""Training on Fashion-MNIST: the loop that trains one run (``loop``), what each technique
does to it (``techniques``), and input pipelines timed against compute alone (``feeds``). What
to train (recipes, presets, experiments) is data in ``bench.recipes``."""
