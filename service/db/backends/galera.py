"""A migration lock for MariaDB Galera Cluster: a row whose insert the cluster certifies.

`GET_LOCK` holds on the node that took it, and Galera refuses `LOCK TABLES`:
processes starting together on different nodes would both migrate. An insert
of the same primary key commits on one node only, cluster-wide; the others
get a duplicate key or lose certification, and wait until the row is gone.
"""

import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from service.db.backends import mysql_errors as errors
from service.db.backends.mysql_errors import error_code

LOCK_TABLE = "items_service_migration_lock"
# A holder that died mid-migration leaves its row: after this long, it is taken over.
STALE_SECONDS = 600
WAIT_SECONDS = STALE_SECONDS + 300
# A deadlock (LOCK_DEADLOCK), or a statement that lost certification (or was
# aborted by another node's schema change): nothing was done, it can run again.


@contextmanager
def galera_migration_lock(connection: Connection) -> Iterator[None]:
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    _committed(
        connection,
        f"CREATE TABLE IF NOT EXISTS {LOCK_TABLE} (id INT PRIMARY KEY, "
        "holder VARCHAR(255) NOT NULL, taken_at DATETIME(6) NOT NULL) ENGINE=InnoDB",
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while not _take(connection, holder):
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the migration lock ({LOCK_TABLE}) was not free within {WAIT_SECONDS} s"
            )
        time.sleep(random.uniform(0.1, 0.3))
    try:
        yield
    finally:
        connection.rollback()
        _committed(connection, f"DELETE FROM {LOCK_TABLE} WHERE holder = %s", (holder,))


def _take(connection: Connection, holder: str) -> bool:
    """Insert the lock row, first removing one left by a holder that died; False if taken."""
    stale = f"DELETE FROM {LOCK_TABLE} WHERE taken_at < NOW(6) - INTERVAL {STALE_SECONDS} SECOND"
    try:
        connection.exec_driver_sql(stale)
        connection.exec_driver_sql(f"INSERT INTO {LOCK_TABLE} VALUES (1, %s, NOW(6))", (holder,))
        connection.commit()
    except DBAPIError as error:
        connection.rollback()
        if error_code(error) in (errors.DUP_ENTRY, errors.LOCK_DEADLOCK):
            return False
        raise
    return True


def _committed(connection: Connection, statement: str, parameters: Any = ()) -> None:
    """Run `statement` and commit it, again for as long as it loses to another node."""
    while True:
        try:
            connection.exec_driver_sql(statement, parameters)
            connection.commit()
            return
        except DBAPIError as error:
            connection.rollback()
            if error_code(error) != errors.LOCK_DEADLOCK:
                raise
        time.sleep(random.uniform(0.05, 0.2))
