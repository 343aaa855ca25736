"""The ``edgecnn`` command: one click group, each command a thin wrapper over a library function.

Domain errors are raised deep in the library as ``edgecnn.errors.EdgecnnError`` subclasses
(click exceptions with their own exit codes); nothing here catches and prints.
"""
from __future__ import annotations

import json

import click

import edgecnn  # noqa: F401  (sets TF_USE_LEGACY_KERAS before anything imports TensorFlow)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(edgecnn.__version__, prog_name="edgecnn")
def cli():
    """edgecnn: define, train, compress, export, verify, benchmark and bundle compact CNNs."""


# ---------------------------------------------------------------------------- models
@cli.command("models")
@click.argument("names", nargs=-1)
@click.option("--paper", is_flag=True, help="Show our params/MACs/size next to each paper's figure and the ratio.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of {name, params, macs, fp32_bytes, paper}.")
@click.option("--family", default=None, help="Only the models of this family (file name in models_keras).")
def models_command(names, paper, as_json, family):
    """List the registered models with parameters, MACs and fp32 size."""
    from edgecnn.registry import get_entry, list_models
    from edgecnn.zoo_report import format_table, zoo_table

    for n in names:
        get_entry(n)  # unknown names fail before anything is built
    rows = zoo_table(list(names) or list_models(family), paper=paper)
    if as_json:
        out = [{k: r[k] for k in ("name", "params", "macs", "fp32_bytes")} | ({"paper": r["paper"]} if paper else {})
               for r in rows]
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(format_table(rows, paper=paper))
    if paper and any(not c["ok"] for r in rows for c in r["paper_check"]):
        raise click.ClickException("some models are outside their paper tolerance (rows marked NO)")


# ---------------------------------------------------------------------------- train / eval
# (issue 3: train_command, eval_command)

# ---------------------------------------------------------------------------- export / verify
# (issue 4: export_command, verify_command)

# ---------------------------------------------------------------------------- benchmark / pipeline
# (issue 5: benchmark_command, pipeline_command)

# ---------------------------------------------------------------------------- classify / bundle
# (issue 6: classify_command; issue 7: bundle group with `android`)


def main():
    cli(prog_name="edgecnn")


if __name__ == "__main__":
    main()
