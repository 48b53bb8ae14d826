"""Schema sync: compare the models with the live database and add what is missing.

Alembic's autogenerate comparison finds the differences; this module only sorts
them into what it applies (new tables, columns, indexes) and what it reports and
leaves alone. It never drops anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import Column, create_engine, text
from sqlalchemy.engine import Connection, Engine, make_url

from extensions import db


@dataclass
class Plan:
    apply: list[tuple[str, Any]] = field(default_factory=list)  # (description, diff)
    ignore: list[str] = field(default_factory=list)

    @property
    def up_to_date(self) -> bool:
        return not self.apply


def ensure_database(url: str) -> bool:
    """Create the database the URL names if it is missing; True when it was created."""
    parsed = make_url(url)
    if not parsed.database:
        return False
    server: Engine = create_engine(parsed.set(database=""), pool_pre_ping=True)
    try:
        with server.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :name"),
                                  {"name": parsed.database}).first()
            if exists:
                return False
            quoted = parsed.database.replace("`", "``")
            conn.execute(text(f"CREATE DATABASE `{quoted}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"))
            return True
    finally:
        server.dispose()


def make_plan(conn: Connection) -> Plan:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    diffs = compare_metadata(context, db.metadata)
    plan = Plan()
    new_tables = {diff[1].name for diff in diffs if isinstance(diff, tuple) and diff[0] == "add_table"}
    for diff in diffs:
        if isinstance(diff, list):  # column modifications come grouped per column
            for kind, _, table, column, *_, in_database, in_model in diff:
                plan.ignore.append(f"{kind} {table}.{column}: database {in_database!r}, model {in_model!r}")
            continue
        kind = diff[0]
        if kind == "add_table":
            plan.apply.append((f"create table {diff[1].name}", diff))
        elif kind == "add_column":
            plan.apply.append((f"add column {diff[2]}.{diff[3].name}", diff))
        elif kind in ("add_index", "add_constraint"):
            if diff[1].table.name not in new_tables:  # created with their table
                plan.apply.append((f"add index {diff[1].table.name}.{diff[1].name}", diff))
        elif kind == "remove_table":
            plan.ignore.append(f"table {diff[1].name} is only in the database")
        elif kind == "remove_column":
            plan.ignore.append(f"column {diff[2]}.{diff[3].name} is only in the database")
        elif kind in ("remove_index", "remove_constraint"):
            plan.ignore.append(f"index {diff[1].table.name}.{diff[1].name} is only in the database")
        else:
            plan.ignore.append(f"{kind}: not handled")
    plan.ignore.extend(_collation_changes(conn))
    return plan


def _collation_changes(conn: Connection) -> list[str]:
    """Columns whose collation differs from the model's; compare_metadata does not look at collations."""
    wanted = {(table.name, column.name): column.type.collation for table in db.metadata.sorted_tables
              for column in table.columns if getattr(column.type, "collation", None)}
    rows = conn.execute(text("SELECT table_name, column_name, collation_name FROM information_schema.columns"
                             " WHERE table_schema = DATABASE() ORDER BY table_name, ordinal_position"))
    return [f"modify_collation {table}.{column}: database {actual!r}, model {wanted[table, column]!r}"
            for table, column, actual in rows if wanted.get((table, column), actual) != actual]


def apply_plan(conn: Connection, plan: Plan) -> None:
    operations = Operations(MigrationContext.configure(conn))
    for _, diff in plan.apply:
        kind = diff[0]
        if kind == "add_table":  # the model's own Table, so that its indexes come along
            db.metadata.tables[diff[1].name].create(conn)
        elif kind == "add_column":
            operations.add_column(diff[2], _detached(diff[3]))
        else:
            diff[1].create(conn)


def _detached(column: Column) -> Column:
    """The model's column again, on no table: add_column attaches what it is given to a table of
    its own, and the model's column already belongs to the model's (SQLAlchemy's copy is private)."""
    default = column.server_default.arg if column.server_default is not None else None
    return Column(column.name, column.type, nullable=column.nullable, server_default=default, comment=column.comment)
