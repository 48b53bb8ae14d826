"""flask CLI commands: schema sync and maintenance."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import with_appcontext

from extensions import db
from services import schema


@click.command("sync-schema")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@with_appcontext
def sync_schema_command(yes: bool) -> None:
    """Create missing tables, columns and indexes; never drop anything."""
    url = current_app.config["SQLALCHEMY_DATABASE_URI"]
    if schema.ensure_database(url):
        click.echo(f"Created database {db.engine.url.database}.")
    with db.engine.begin() as conn:
        plan = schema.make_plan(conn)
        for note in plan.ignore:
            click.echo(f"  leave alone: {note}")
        if plan.up_to_date:
            click.echo("Schema is up to date.")
            return
        click.echo("Plan:")
        for description, _ in plan.apply:
            click.echo(f"  {description}")
        if not yes and not click.confirm("Apply these changes?"):
            raise click.Abort()
        schema.apply_plan(conn, plan)
    click.echo(f"Applied {len(plan.apply)} change(s).")


def init_app(app: Flask) -> None:
    app.cli.add_command(sync_schema_command)
