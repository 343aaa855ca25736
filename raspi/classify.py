#!/usr/bin/env python3
"""Classify images or the camera on a Pi: the same as `edgecnn classify`, for those who prefer a script.

    ~/edgecnn-venv/bin/python raspi/classify.py ~/models/quicknet/export photo.jpg
    ~/edgecnn-venv/bin/python raspi/classify.py ~/models/quicknet/export --camera --every 10

Needs only the light install (raspi/install.sh); see `--help` for the options.
"""
import sys

from edgecnn.cli import cli

if __name__ == "__main__":
    sys.exit(cli.main(args=["classify"] + sys.argv[1:], prog_name="raspi/classify.py classify"))
