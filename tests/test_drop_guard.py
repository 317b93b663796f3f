"""DROP EXTENSION deletes every member table, the logs included: the plain command is
refused while generation_logs holds rows; CASCADE says it is meant."""

from psycopg import sql

from conftest import EXTENSION, log_generation, make_user, raises_pg_error, scalar


def extension_exists(conn):
    return scalar(conn, "select count(*) from pg_extension where extname = %s", [EXTENSION]) == 1


def test_a_plain_drop_is_refused_while_there_are_logs(cluster):
    with cluster.database("guard") as name, cluster.connect(name) as conn:
        user = make_user(conn)
        log_generation(conn, user)
        log_generation(conn, user)
        with raises_pg_error("2BP01", "would delete 2 logged generations", "CASCADE"):
            conn.execute("drop extension aurora_telemetry")
        assert extension_exists(conn)
        assert scalar(conn, "select count(*) from public.generation_logs") == 2
        # Other extensions are not affected by the guard.
        conn.execute("create extension pgcrypto")
        conn.execute("drop extension pgcrypto")
        conn.execute("drop extension aurora_telemetry cascade")
        assert not extension_exists(conn)


def test_an_empty_install_drops_and_comes_back(cluster):
    with cluster.database("guard_empty") as name, cluster.connect(name) as conn:
        conn.execute("drop extension aurora_telemetry")
        assert not extension_exists(conn)
        conn.execute(sql.SQL("create extension {}").format(sql.Identifier(EXTENSION)))
        assert extension_exists(conn)
