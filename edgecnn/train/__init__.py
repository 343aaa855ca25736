"""Training and bringing a model in: recipes (``recipes``), the fit loop with checkpoints, resume
and tf.distribute strategies (``fit``), metrics and plots of a run (``evaluate``) and the import of
a model trained elsewhere (``importer``). Each writes a run through ``edgecnn.contract``."""
from edgecnn.train.fit import train  # noqa: F401  (edgecnn.train.train: the Python entry point)
