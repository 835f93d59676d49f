"""Row locks that hold across processes and hosts, on PostgreSQL and on SQLite.

PostgreSQL locks the selected rows with ``SELECT ... FOR UPDATE``. SQLite has no row
locks, so the transaction takes the database write lock first with ``BEGIN IMMEDIATE``:
only one connection can hold it, and a second one waits for the first to commit
before it reads anything. Either way the lock lasts until the session commits or
rolls back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select

from app.extensions import db


def is_sqlite() -> bool:
    return db.session.get_bind().dialect.name == "sqlite"


def begin_sqlite_write_lock() -> None:
    """Start the session's transaction with ``BEGIN IMMEDIATE`` on SQLite.

    Python's sqlite3 module (3.11, legacy transaction control) opens a transaction
    only before the first write, so a connection that is not in a transaction holds no
    lock yet and can begin one explicitly. A connection that is already in one has
    written, so it holds the write lock already.
    """
    connection = db.session.connection()
    driver_connection = connection.connection.driver_connection
    if not driver_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def lock_rows(statement: Select, skip_locked: bool = False) -> Sequence[Any]:
    """Execute ``statement`` and lock the rows it returns until the session ends its transaction.

    ``skip_locked`` leaves out rows that another transaction holds on PostgreSQL.
    SQLite waits for the write lock instead, up to the driver's busy timeout.
    Loaded objects are overwritten with the stored values, so a caller sees what
    another worker committed before the lock was granted.
    """
    statement = statement.execution_options(populate_existing=True)
    if is_sqlite():
        begin_sqlite_write_lock()
        return db.session.scalars(statement).all()
    return db.session.scalars(statement.with_for_update(skip_locked=skip_locked)).all()
