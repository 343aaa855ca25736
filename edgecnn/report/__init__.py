"""Whole-pipeline reports: ``edgecnn pipeline`` (train -> export -> verify -> benchmark ->
report.md with plots) and ``edgecnn bench paper`` (the papers' speed and size claims beside this
machine's figures). The only stage that drives all the others."""
