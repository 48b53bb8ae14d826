"""flask CLI commands: schema sync and maintenance."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_babel import force_locale
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from config import reference, settings
from extensions import db
from models import PaymentModel, PaymentOutcome, RefundStatus, UserModel
from schemas.auth import normalize_email
from services import account, audit, keyset, orders
from services.payments import dev as dev_payments
from services.payments import reconcile, refunds
from services.payments.base import ProviderError
from services.signin import accounts, operators, passkeys, passwords
from services.signin import sessions as signin_sessions
from store import sessions

users = AppGroup("users", help="Operator commands for accounts.")
payments_group = AppGroup("payments", help="Operator commands for stored payments.")
refunds_group = AppGroup("refunds", help="Operator commands for refunds.")
audit_group = AppGroup("audit", help="Operator commands for the account events.")
keys_group = AppGroup("keys", help="The keys that sign tokens: generate, promote, list, drop (services/keyset.py).")
# An EMAIL argument arrives normalized, as the API's schemas load addresses.
email_argument = click.argument("email", callback=lambda ctx, param, value: normalize_email(value))


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> timedelta:
    """30m, 2h, 1d."""
    units = {"m": "minutes", "h": "hours", "d": "days"}
    if len(value) < 2 or value[-1] not in units or not value[:-1].isdigit():
        raise click.BadParameter("a number and m, h or d, e.g. 2h")
    return timedelta(**{units[value[-1]]: int(value[:-1])})


@click.command("sync-schema")
@click.option("--yes", is_flag=True, help="Apply without asking.")
@with_appcontext
def sync_schema_command(yes: bool) -> None:
    """Create missing tables, columns and indexes; never drop anything."""
    from services import schema  # Alembic only here: imported by every worker, it cost ~11 MB each

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


def _user(email: str) -> UserModel:
    user = accounts.find_user(email)
    if user is None:
        _unknown(email)
    return user


@users.command("show")
@email_argument
def show_user(email: str) -> None:
    """Print an account and its live session count."""
    user = _user(email)
    for key, value in signin_sessions.public_user(user).items():
        click.echo(f"{key}: {value}")
    click.echo(f"email_verified_at: {user.email_verified_at.isoformat() if user.email_verified_at else '-'}")
    click.echo(f"locked_for_seconds: {passwords.seconds_locked(user.email) or '-'}")
    click.echo(f"live_sessions: {len(sessions.live_sessions(user.id))}")


@users.command("sessions")
@email_argument
def list_user_sessions(email: str) -> None:
    """Print the user's live sessions, newest use first."""
    for session in account.list_sessions(_user(email).id, current_sid="")["items"]:
        click.echo(f"{session['id']}  device={session['device_id'] or '-'}  ip={session['ip'] or '-'}"
                   f"  created={session['created_at'].isoformat()}  last_used={session['last_used_at'].isoformat()}")


@users.command("passkeys")
@email_argument
def list_user_passkeys(email: str) -> None:
    """Print the user's passkeys."""
    for key in passkeys.of_user(_user(email).id):
        last = key.last_used_at.isoformat() if key.last_used_at else "-"
        click.echo(f"{key.id}  {key.name}  synced={'yes' if key.backed_up else 'no'}  aaguid={key.aaguid}"
                   f"  created={key.created_at.isoformat()}  last_used={last}  count={key.sign_count}")


@users.command("activity")
@email_argument
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=50, show_default=True)
def user_activity(email: str, limit: int) -> None:
    """Print the account's events, newest first."""
    with force_locale("en"):  # no request to choose a language from
        shown = audit.recent(_user(email).id, 1, limit)["items"]
    for event in shown:
        click.echo(f"{event['created_at'].isoformat()}  {event['event']}  ip={event['ip'] or '-'}"
                   f"  device={event['device_id'] or '-'}  {event['detail'] or ''}".rstrip())


@audit_group.command("prune")
@click.option("--older-than", "older_than", default="180d", callback=_duration, show_default=True,
              help="Delete events older than this (30m, 12h, 180d).")
@with_appcontext
def prune_events(older_than: timedelta) -> None:
    """Delete old account events; for cron."""
    click.echo(f"Deleted {audit.prune(older_than)} account event(s).")


@users.command("unlock")
@email_argument
def unlock_user(email: str) -> None:
    """Clear a lockout and the failed-login count."""
    if operators.unlock(email) is None:
        _unknown(email)
    click.echo(f"Unlocked {email}.")


@users.command("revoke")
@email_argument
def revoke_user(email: str) -> None:
    """Log a user out of every session."""
    if operators.revoke_everywhere(email) is None:
        _unknown(email)
    click.echo(f"Revoked every session of {email}.")


@click.command("expire-orders")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Rows per transaction (default: order.sweep_batch_size).")
@with_appcontext
def expire_orders_command(batch_size: int | None) -> None:
    """Expire every order still PENDING after its deadline, in batches; for cron."""
    click.echo(f"Expired {orders.expire_due_orders(batch_size)} order(s).")


@click.command("pay-order")
@click.argument("order_no")
@click.option("--url", default=None, help="The running service (default: payment.notify_base_url).")
@click.option("--transaction-id", default=None,
              help="Default: a new random dev_... id; for an order paid already, its id (the notification again).")
@with_appcontext
def pay_order_command(order_no: str, url: str | None, transaction_id: str | None) -> None:
    """Pay ORDER_NO locally: the dev provider books the payment, then sends the running service a
    signed notification for its amount (reconcile-orders finds a payment whose notification was lost)."""
    config = settings.payment
    if "dev" not in config.providers:
        raise click.ClickException("the dev provider is not enabled (payment.providers)")
    order = orders.find_order(order_no)
    if order is None:
        raise click.ClickException(f"no order {order_no}")
    try:
        transaction_id = dev_payments.record_payment(order, transaction_id)
    except ProviderError as refused:
        raise click.ClickException(str(refused)) from None
    try:
        status, answer = dev_payments.send_payment(url or config.notify_base_url, config.dev.secret,
                                                   order, transaction_id)
    except OSError as exc:
        raise click.ClickException(f"the service did not answer: {exc}") from None
    click.echo(f"{status} {answer}")
    if status >= 400:
        raise click.ClickException("the service refused the notification")


@users.command("delete")
@email_argument
@click.option("--yes", is_flag=True, help="Delete without asking.")
def delete_user(email: str, yes: bool) -> None:
    """Delete an account; its sessions end at once."""
    if accounts.find_user(email) is None:
        _unknown(email)
    if not yes:
        click.confirm(f"Delete {email} for good?", abort=True)
    try:
        operators.delete_account(email)
    except IntegrityError:
        db.session.rollback()
        raise click.ClickException(
            f"{email} has orders on record: every session was revoked, the account kept") from None
    click.echo(f"Deleted {email}.")


def _print_counts(counts: Counter[str], what: str) -> None:
    click.echo(", ".join(f"{name}: {count}" for name, count in sorted(counts.items())) or f"no {what}")


@click.command("reconcile-orders")
@click.option("--since", default="2h", callback=_duration, show_default=True,
              help="How far back ended orders are asked about (30m, 2h, 1d).")
@with_appcontext
def reconcile_orders_command(since: timedelta) -> None:
    """Ask the providers about orders whose notification may have been lost, and apply what they
    say as a notification would; close what ended but is still payable. For cron; exits 1 when a
    provider could not be asked."""
    counts = reconcile.reconcile(since)
    _print_counts(counts, "orders to ask about")
    if counts[reconcile.UNREACHABLE]:
        raise click.ClickException(f"{counts[reconcile.UNREACHABLE]} order(s) could not be asked about; "
                                   "the next run asks again")


@payments_group.command("list")
@click.option("--outcome", type=click.Choice([outcome.value for outcome in PaymentOutcome]), default=None)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@with_appcontext
def list_payments(outcome: str | None, limit: int) -> None:
    """Print stored payments, newest first, with what is left to refund of each."""
    query = select(PaymentModel).order_by(PaymentModel.id.desc()).limit(limit)
    listed = db.session.scalars(query.where(PaymentModel.outcome == outcome) if outcome else query).all()
    taken = refunds.refunded([payment.id for payment in listed])
    for payment in listed:
        click.echo(f"{payment.id}  {payment.provider} {payment.transaction_id}  order={payment.order_no}"
                   f"  {payment.amount} {payment.currency}  {payment.outcome}"
                   f"  refundable={payment.amount - taken.get(payment.id, 0)}"
                   f"  received={payment.received_at.isoformat()}")


@payments_group.command("refund")
@click.argument("payment_id", type=int)
@click.option("--amount", type=click.IntRange(min=1), default=None,
              help="Minor units (default: all that is left to refund).")
@click.option("--reason", default=None, help="Kept with the refund.")
@click.option("--yes", is_flag=True, help="Refund without asking.")
@with_appcontext
def refund_payment(payment_id: int, amount: int | None, reason: str | None, yes: bool) -> None:
    """Refund PAYMENT_ID through its provider, in full or --amount of it."""
    payment = db.session.get(PaymentModel, payment_id)
    if not yes and payment is not None:  # an unknown id is refused below, without a question
        click.confirm(f"Refund {amount or refunds.refundable(payment)} of payment {payment_id}?", abort=True)
    try:
        refund = refunds.request_refund(payment_id, amount, reason)
    except refunds.RefundRefused as refused:
        raise click.ClickException(str(refused)) from None
    click.echo(f"refund {refund.id}: {refund.status} {refund.amount} {refund.currency}"
               + (f" ({refund.error})" if refund.error else ""))
    if refund.status == RefundStatus.FAILED:
        raise click.ClickException("the provider refused the refund; it can be asked again")


@refunds_group.command("sweep")
@with_appcontext
def sweep_refunds() -> None:
    """Ask again about refunds the provider has not settled; with payment.auto_refund, refund every
    needs_refund payment. For cron."""
    _print_counts(refunds.sweep(), "refunds to make")


@click.command("config-reference")
def config_reference_command() -> None:
    """Print every setting with its default and meaning (docs/configuration.md)."""
    click.echo(reference(), nl=False)


def _keys_dir() -> str:
    directory = settings.auth.jwt_keys_dir
    if not directory:
        raise click.ClickException("set auth.jwt_keys_dir (APP__AUTH__JWT_KEYS_DIR) to a folder for the keyset")
    return directory


def _droppable_at(entry: dict) -> datetime | None:
    """When no token a retired key signed can be live any more (the longest token's life after it retired)."""
    if entry["state"] != "retired" or not entry.get("retired_at"):
        return None
    auth = settings.auth
    longest = max(auth.access_token_ttl, auth.refresh_token_ttl) + auth.refresh_grace_seconds
    return datetime.fromisoformat(entry["retired_at"]) + timedelta(seconds=longest)


@keys_group.command("generate")
@click.option("--alg", type=click.Choice(keyset.ALGORITHMS), default="EdDSA", show_default=True)
def generate_key(alg: str) -> None:
    """Write a new key, in state next: published at once, signing only once promoted."""
    entry = keyset.generate(_keys_dir(), alg)
    click.echo(entry["kid"])
    click.echo(f"Reload the workers, wait {settings.auth.jwks_max_age} s (jwks_max_age) so that verifiers "
               f"have it, then: flask keys promote {entry['kid']}", err=True)


@keys_group.command("promote")
@click.argument("kid")
def promote_key(kid: str) -> None:
    """next -> active; the key active until now -> retired (it still verifies)."""
    directory = _keys_dir()
    entries = keyset.read_entries(directory)
    if not any(entry["kid"] == kid and entry["state"] == "next" for entry in entries):
        raise click.ClickException(f"no key {kid} in state next")
    now = datetime.now(UTC).isoformat()
    for entry in entries:
        if entry["state"] == "active":
            entry["state"], entry["retired_at"] = "retired", now
        if entry["kid"] == kid:
            entry["state"] = "active"
    keyset.write_entries(directory, entries)
    click.echo(f"{kid} signs once the workers reload (gunicorn: HUP).")


@keys_group.command("list")
def list_keys() -> None:
    """Every key: its state, age, and when a retired one may be dropped."""
    now = datetime.now(UTC)
    for entry in keyset.read_entries(_keys_dir()):
        droppable = _droppable_at(entry)
        after = "-" if droppable is None else ("now" if droppable <= now else droppable.isoformat())
        click.echo(f"{entry['kid']}  {entry['alg']}  {entry['state']}  created={entry['created_at']}"
                   f"  droppable={after}")


@keys_group.command("drop")
@click.argument("kid")
def drop_key(kid: str) -> None:
    """Forget a retired key once every token it signed has expired."""
    directory = _keys_dir()
    entries = keyset.read_entries(directory)
    entry = next((entry for entry in entries if entry["kid"] == kid), None)
    droppable = _droppable_at(entry) if entry else None
    if droppable is None or droppable > datetime.now(UTC):
        raise click.ClickException(f"{kid}: only a retired key whose tokens have all expired can go"
                                   + (f" (at {droppable.isoformat()})" if droppable else ""))
    keyset.write_entries(directory, [other for other in entries if other["kid"] != kid])
    for suffix in (".pem", ".secret"):
        (Path(directory) / f"{kid}{suffix}").unlink(missing_ok=True)
    click.echo(f"Dropped {kid}; reload the workers.")


def init_app(app: Flask) -> None:
    app.cli.add_command(config_reference_command)
    app.cli.add_command(keys_group)
    app.cli.add_command(sync_schema_command)
    app.cli.add_command(users)
    app.cli.add_command(payments_group)
    app.cli.add_command(refunds_group)
    app.cli.add_command(audit_group)
    app.cli.add_command(reconcile_orders_command)
    app.cli.add_command(expire_orders_command)
    app.cli.add_command(pay_order_command)
