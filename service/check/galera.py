"""MariaDB Galera: a node in the cluster's primary component, Synced, and the settings
Galera needs. Both checks answer nothing on a server that is not a Galera node."""

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from service.check.findings import Finding, combined, error_message, shown
from service.db.backends import Backend
from service.db.backends.mysql import CAUSALITY_CHECKS


def galera_state(connection: Connection) -> dict[str, str]:
    """The node's wsrep variables and status; empty unless it is a Galera node."""
    variables = shown(connection, "SHOW GLOBAL VARIABLES", "wsrep_%")
    if variables.get("wsrep_on") != "ON" and variables.get("wsrep_provider", "none") == "none":
        return {}
    return variables | shown(connection, "SHOW GLOBAL STATUS", "wsrep_%")


def global_variables(connection: Connection, *names: str) -> dict[str, str]:
    listed = ", ".join(f"'{name}'" for name in names)
    rows = connection.exec_driver_sql(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({listed})")
    return {str(name): str(value) for name, value in rows}


def cluster(connection: Connection, backend: Backend) -> Finding | None:
    wsrep = galera_state(connection)
    if not wsrep:
        return None
    size = int(wsrep.get("wsrep_cluster_size", "0"))
    state = wsrep.get("wsrep_local_state_comment", "unknown")
    findings = [Finding("ok", f"{size} node(s)")]
    if size < 3:
        findings.append(
            Finding(
                "warning",
                "fewer than 3 nodes: losing one leaves no majority, and the rest stop",
                "add a node, or an arbitrator (garbd)",
            )
        )
    if wsrep.get("wsrep_cluster_status") != "Primary":
        findings.append(
            Finding(
                "problem",
                f"cluster status {wsrep.get('wsrep_cluster_status')}, not Primary: this node is "
                "cut off from the majority",
                "connect to a node of the primary component, or restore quorum",
            )
        )
    if wsrep.get("wsrep_ready") != "ON":
        findings.append(
            Finding(
                "problem",
                "wsrep_ready is OFF: the node refuses queries",
                "wait, or use another node",
            )
        )
    if state in ("Donor/Desynced", "Desynced"):
        findings.append(Finding("warning", f"{state}: may lag or block while it serves a joiner"))
    elif state != "Synced":
        findings.append(
            Finding(
                "problem", f"{state}, not Synced", "wait until it is Synced, or use another node"
            )
        )
    else:
        findings.append(Finding("ok", "Synced, ready, Primary"))
    return combined(findings)


def settings(connection: Connection, backend: Backend) -> Finding | None:
    if not galera_state(connection):
        return None
    required = {"wsrep_on": "ON", "binlog_format": "ROW", "innodb_autoinc_lock_mode": "2"}
    found = global_variables(connection, *required)
    findings = [
        Finding("ok", f"{name} {wanted}")
        if found.get(name) == wanted
        else Finding(
            "problem",
            f"{name} is {found.get(name)}, Galera needs {wanted}",
            f"{name} = {wanted} in the server's configuration",
        )
        for name, wanted in required.items()
    ]
    findings.append(sync_wait(connection))
    return combined(findings)


def sync_wait(connection: Connection) -> Finding:
    """Whether the causality checks the service turns on for its connections can be set."""
    try:
        connection.exec_driver_sql(f"SET SESSION wsrep_sync_wait = {CAUSALITY_CHECKS}")
    except sa.exc.DBAPIError as error:
        return Finding(
            "problem",
            f"wsrep_sync_wait cannot be set: {error_message(error)}",
            "use a Galera version that has wsrep_sync_wait (MariaDB 10.1 or newer)",
        )
    return Finding(
        "ok",
        f"wsrep_sync_wait {CAUSALITY_CHECKS} on the service's connections (a statement "
        "first waits until this node applied every earlier commit)",
    )
