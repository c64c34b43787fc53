"""PostgreSQL's errors: every SQLSTATE the service reads, by the condition
name PostgreSQL's manual gives it."""

UNIQUE_VIOLATION = "23505"
CHECK_VIOLATION = "23514"
FOREIGN_KEY_VIOLATION = "23503"
NOT_NULL_VIOLATION = "23502"
# The server is a standby, or a primary demoted by a failover.
READ_ONLY_SQL_TRANSACTION = "25006"
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
# A lock waited for longer than lock_timeout.
LOCK_NOT_AVAILABLE = "55P03"
UNDEFINED_TABLE = "42P01"
UNDEFINED_COLUMN = "42703"
UNDEFINED_OBJECT = "42704"
# Classes of a server that cannot serve now: connection exceptions,
# insufficient resources, operator intervention (shutdown, cannot connect
# now, query canceled), system errors.
UNAVAILABLE_CLASSES = ("08", "53", "57", "58")
INTEGRITY_CONSTRAINT_CLASS = "23"
