"""``edgecnn models``: the zoo, and the zoo against its papers."""
from __future__ import annotations

import json

import click

from edgecnn.cli.group import cli
from edgecnn.cli.options import check_family


# ---------------------------------------------------------------------------- models
@cli.command("models")
@click.argument("names", nargs=-1)
@click.option("--paper", is_flag=True, help="Show our params/MACs/size next to each paper's figure and the ratio.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: a list of {name, params, macs, fp32_bytes, paper}.")
@click.option("--family", default=None, callback=check_family,
              help="Only the models of this family (file name in models_keras).")
def models_command(names, paper, as_json, family):
    """List the registered models with parameters, MACs and fp32 size."""
    from edgecnn.models.registry import get_entry, list_models
    from edgecnn.models.zoo_report import format_table, zoo_table

    for n in names:
        get_entry(n)  # unknown names fail before anything is built
    # Named models are built (exact, a few seconds each); the whole zoo comes from the committed table.
    rows = zoo_table(list(names) or list_models(family), paper=paper, exact=bool(names))
    if as_json:
        out = [{k: r[k] for k in ("name", "params", "macs", "fp32_bytes")} | ({"paper": r["paper"]} if paper else {})
               for r in rows]
        click.echo(json.dumps(out, indent=2))
    else:
        click.echo(format_table(rows, paper=paper))
    if paper and any(not c["ok"] for r in rows for c in r["paper_check"]):
        raise click.ClickException("some models are outside their paper tolerance (rows marked NO)")
