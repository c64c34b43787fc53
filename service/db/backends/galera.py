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

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

LOCK_TABLE = "items_service_migration_lock"
# A holder that died mid-migration leaves its row: after this long, it is taken over.
STALE_SECONDS = 600
WAIT_SECONDS = STALE_SECONDS + 300
# Duplicate key on the same node; lost certification against another node's insert.
_TAKEN = {1062, 1213}


@contextmanager
def galera_migration_lock(connection: Connection) -> Iterator[None]:
    holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    connection.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {LOCK_TABLE} (id INT PRIMARY KEY, "
        "holder VARCHAR(255) NOT NULL, taken_at DATETIME(6) NOT NULL) ENGINE=InnoDB"
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
        connection.exec_driver_sql(f"DELETE FROM {LOCK_TABLE} WHERE holder = %s", (holder,))
        connection.commit()


def _take(connection: Connection, holder: str) -> bool:
    try:
        connection.exec_driver_sql(
            f"DELETE FROM {LOCK_TABLE} WHERE taken_at < NOW(6) - INTERVAL {STALE_SECONDS} SECOND"
        )
        connection.exec_driver_sql(f"INSERT INTO {LOCK_TABLE} VALUES (1, %s, NOW(6))", (holder,))
        connection.commit()
    except DBAPIError as error:
        connection.rollback()
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
        if code in _TAKEN:
            return False
        raise
    return True
