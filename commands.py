"""flask CLI commands: schema sync and maintenance."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from extensions import db
from services import auth, schema, token_store

users = AppGroup("users", help="Operator commands for accounts.")


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


def _unknown(email: str) -> None:
    raise click.ClickException(f"no user with email {email}")


@users.command("show")
@click.argument("email")
def show_user(email: str) -> None:
    """Print an account and its live session count."""
    user = auth.find_user(email.strip().lower())
    if user is None:
        _unknown(email)
    for key, value in auth.public_user(user).items():
        click.echo(f"{key}: {value}")
    click.echo(f"failed_login_attempts: {user.failed_login_attempts}")
    click.echo(f"locked_until: {user.locked_until.isoformat() if user.is_locked() else '-'}")
    click.echo(f"live_sessions: {token_store.live_sessions(user.id)}")


@users.command("unlock")
@click.argument("email")
def unlock_user(email: str) -> None:
    """Clear a lockout and the failed-login count."""
    if auth.unlock(email.strip().lower()) is None:
        _unknown(email)
    click.echo(f"Unlocked {email}.")


@users.command("revoke")
@click.argument("email")
def revoke_user(email: str) -> None:
    """Log a user out of every session."""
    if auth.revoke_everywhere(email.strip().lower()) is None:
        _unknown(email)
    click.echo(f"Revoked every session of {email}.")


def init_app(app: Flask) -> None:
    app.cli.add_command(sync_schema_command)
    app.cli.add_command(users)
