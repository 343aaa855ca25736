"""Measuring, below every stage that measures: the one runtime facade that loads artifacts
(``runtime``, its backend table ``backends``), the timed loops and turn-taking (``timing``), their
statistics (``stats``), memory (``memory``), the machine a figure was measured on (``machine``),
the boards edgecnn targets (``boards``, the one board table) and where a TFLite file's bytes go
(``anatomy``). Export (per-op costs of mixed precision), benchmark and the emulator import it;
it never builds or converts a model."""
