"""The private clusters of clusters.py work: Galera replicates and balances,
a PostgreSQL standby follows its primary and takes over, PgBouncer pools.

Each runs in the tox env of its kind of cluster (`galera`, `postgres-ha`,
`pgbouncer`), on a private cluster of its own that it may break.
"""

from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from clusters import GaleraCluster, PgBouncer, PostgresPair
from private_servers import PrivatePostgres

galera = pytest.mark.cluster("galera")
postgres_ha = pytest.mark.cluster("postgres-ha")
pgbouncer = pytest.mark.cluster("pgbouncer")


@pytest.fixture(scope="module")
def cluster() -> Iterator[GaleraCluster]:
    with GaleraCluster() as cluster:
        cluster.create_database("items")
        yield cluster


def items_urls(cluster: GaleraCluster) -> list[str]:
    return [
        sa.make_url(url).set(database="items").render_as_string(hide_password=False)
        for url in cluster.node_urls
    ]


def engine(url: str, **options: object) -> sa.Engine:
    return sa.create_engine(url, poolclass=sa.pool.NullPool, **options)


def causal(url: str) -> sa.Engine:
    """An engine whose reads wait until the node applied every earlier commit."""
    return engine(url, connect_args={"init_command": "SET SESSION wsrep_sync_wait = 1"})


@galera
def test_a_row_written_on_one_node_is_read_on_another(cluster: GaleraCluster) -> None:
    first, _, third = items_urls(cluster)
    with engine(first).begin() as connection:
        connection.exec_driver_sql("CREATE TABLE replicated (id INT PRIMARY KEY, name TEXT)")
        connection.exec_driver_sql("INSERT INTO replicated VALUES (1, 'from node1')")
    with causal(third).connect() as connection:
        assert connection.exec_driver_sql("SELECT @@wsrep_on, @@wsrep_node_name").one() == (
            1,
            "node3",
        )
        assert connection.exec_driver_sql("SELECT name FROM replicated").scalars().all() == [
            "from node1"
        ]


@galera
def test_each_node_hands_out_its_own_auto_increment_ids(cluster: GaleraCluster) -> None:
    urls = items_urls(cluster)
    with engine(urls[0]).begin() as connection:
        connection.exec_driver_sql("CREATE TABLE counted (id INT AUTO_INCREMENT PRIMARY KEY)")
    offsets = set()
    for url in urls:
        with engine(url).begin() as connection:
            new_id = connection.exec_driver_sql("INSERT INTO counted VALUES ()").lastrowid
            # Galera sets both from the node's place in the cluster, not from its name.
            step, offset = connection.exec_driver_sql(
                "SELECT @@auto_increment_increment, @@auto_increment_offset"
            ).one()
            assert step == 3
            assert new_id % 3 == offset % 3
            offsets.add(offset)
    assert offsets == {1, 2, 3}


@galera
def test_the_balancer_sends_consecutive_connections_to_different_nodes(
    cluster: GaleraCluster,
) -> None:
    balancer = engine(cluster.balancer_url)
    names = []
    for _ in range(6):
        with balancer.connect() as connection:
            names.append(connection.exec_driver_sql("SELECT @@wsrep_node_name").scalar_one())
    assert sorted(names) == ["node1", "node1", "node2", "node2", "node3", "node3"]
    assert len(set(names[:3])) == 3


@galera
def test_the_same_row_changed_on_two_nodes_at_once_fails_certification(
    cluster: GaleraCluster,
) -> None:
    first, second, _ = items_urls(cluster)
    with engine(first).begin() as connection:
        connection.exec_driver_sql("CREATE TABLE contested (id INT PRIMARY KEY, v INT)")
        connection.exec_driver_sql("INSERT INTO contested VALUES (1, 0)")
    with engine(first).connect() as one, engine(second).connect() as other:
        one.exec_driver_sql("UPDATE contested SET v = 1 WHERE id = 1")
        other.exec_driver_sql("UPDATE contested SET v = 2 WHERE id = 1")
        one.commit()
        with pytest.raises(sa.exc.OperationalError) as lost:
            other.commit()
    assert lost.value.orig.args[0] == 1213  # type: ignore[union-attr]
    with causal(second).connect() as connection:
        assert connection.exec_driver_sql("SELECT v FROM contested").scalar() == 1


@galera
def test_a_killed_node_is_balanced_around_and_catches_up_when_started(
    cluster: GaleraCluster,
) -> None:
    _, _, third = items_urls(cluster)
    balancer_items = sa.make_url(cluster.balancer_url).set(database="items")
    with engine(third).begin() as connection:
        connection.exec_driver_sql("CREATE TABLE survived (id INT PRIMARY KEY)")
    cluster.kill_node(2)
    try:
        assert cluster.size() == 2
        balancer = engine(balancer_items.render_as_string())
        names = set()
        for n in range(4):
            with balancer.begin() as connection:
                names.add(connection.exec_driver_sql("SELECT @@wsrep_node_name").scalar())
                connection.exec_driver_sql(f"INSERT INTO survived VALUES ({n})")
        assert names == {"node1", "node2"}
    finally:
        cluster.start_node(2)
    assert cluster.size() == 3
    with causal(third).connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM survived").scalar() == 4


@postgres_ha
def test_the_standby_follows_the_primary_and_refuses_writes() -> None:
    with PostgresPair() as pair:
        primary, standby = engine(pair.primary_url), engine(pair.standby_url)
        with primary.begin() as connection:
            assert connection.exec_driver_sql(
                "SELECT application_name, sync_state FROM pg_stat_replication"
            ).all() == [("standby1", "sync")]
            connection.exec_driver_sql("CREATE TABLE replicated (name text)")
            # `on` waits until the standby has the WAL; remote_apply until it is visible there.
            connection.exec_driver_sql("SET LOCAL synchronous_commit = remote_apply")
            connection.exec_driver_sql("INSERT INTO replicated VALUES ('from the primary')")
        with standby.connect() as connection:
            assert connection.exec_driver_sql("SELECT name FROM replicated").scalar() == (
                "from the primary"
            )
            with pytest.raises(sa.exc.InternalError) as refused:
                connection.exec_driver_sql("INSERT INTO replicated VALUES ('on the standby')")
        assert refused.value.orig.pgcode == "25006"  # type: ignore[union-attr]


@postgres_ha
def test_the_promoted_standby_takes_writes_once_the_primary_died() -> None:
    with PostgresPair() as pair:
        either = engine(pair.read_write_url)
        with either.begin() as connection:
            assert connection.exec_driver_sql("SELECT pg_is_in_recovery()").scalar() is False
            connection.exec_driver_sql("CREATE TABLE kept (name text)")
            connection.exec_driver_sql("INSERT INTO kept VALUES ('before')")
        pair.kill_primary()
        with pytest.raises(sa.exc.OperationalError, match="session is read-only"):
            either.connect()
        pair.promote_standby()
        with either.begin() as connection:
            # Otherwise the commit below would wait for a standby forever.
            assert connection.exec_driver_sql("SHOW synchronous_standby_names").scalar() == ""
            connection.exec_driver_sql("INSERT INTO kept VALUES ('after')")
        with engine(pair.standby_url).connect() as connection:
            assert connection.exec_driver_sql("SELECT name FROM kept").scalars().all() == [
                "before",
                "after",
            ]


@pgbouncer
def test_pgbouncer_forwards_any_database_and_shares_server_connections() -> None:
    server = PrivatePostgres()
    try:
        server.start()
        with engine(server.url, isolation_level="AUTOCOMMIT").connect() as connection:
            connection.exec_driver_sql("CREATE DATABASE bounced")
        with PgBouncer("127.0.0.1", server.port) as bouncer:
            url = sa.make_url(bouncer.url).set(database="bounced").render_as_string()
            # AUTOCOMMIT: each statement is a transaction of its own, on whichever
            # server connection is free; here the only one, shared by both clients.
            bounced = sa.create_engine(url, isolation_level="AUTOCOMMIT")
            with bounced.connect() as one, bounced.connect() as other:
                assert one.exec_driver_sql(
                    "SELECT current_database(), inet_server_port()"
                ).one() == ("bounced", server.port)
                one.exec_driver_sql("SET statement_timeout = '123s'")
                assert other.exec_driver_sql("SHOW statement_timeout").scalar() == "123s"
            bounced.dispose()
    finally:
        server.remove()
