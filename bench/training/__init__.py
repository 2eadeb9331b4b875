"""Training on Fashion-MNIST: recipes, presets and experiments as data (``recipes``), the loop
that trains one run (``loop``), and input pipelines timed against compute alone (``feeds``)."""
