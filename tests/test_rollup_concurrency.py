"""Rollups under concurrent writers: exact, no lost updates, no deadlocks.

Eight connections insert at once, each transaction a multi-row INSERT covering several
users in random order (the shape that deadlocks naive per-row upserts), some of them
rolled back. Afterwards the rollups equal the raw rows and every acknowledged row is there.
"""

import datetime as dt
import random
import threading

import psycopg

from conftest import as_role, make_user, scalar
from test_usage_stats import rollup_drift

WRITERS = 8
TRANSACTIONS_PER_WRITER = 25


def test_eight_concurrent_multi_user_writers_keep_rollups_exact(db, conn):
    users = [make_user(conn) for _ in range(6)]
    now = dt.datetime.now(dt.timezone.utc)
    acknowledged = [0] * WRITERS
    failures = []

    def writer(index):
        rng = random.Random(index)
        with db.connect() as c:
            for _ in range(TRANSACTIONS_PER_WRITER):
                rows = [(rng.choice(users), rng.choice(("Claude", "Imagen-3", "Midjourney")),
                         rng.randrange(0, 20000), rng.random() > 0.2,
                         now - dt.timedelta(minutes=rng.randrange(0, 3 * 24 * 60)))
                        for _ in range(rng.randrange(1, 40))]
                rollback = rng.random() < 0.2
                try:
                    with c.transaction(force_rollback=rollback):
                        c.execute("set local role service_role")
                        with c.cursor() as cur:
                            cur.executemany(
                                """insert into public.generation_logs (user_id, generator, time_ms, success, created_at)
                                   values (%s, %s, %s, %s, %s)""", rows)
                            # One statement covering many users, in arbitrary order.
                            cur.execute(
                                """insert into public.generation_logs (user_id, generator, time_ms, created_at)
                                   select u, 'Claude', 100, %s from unnest(%s::uuid[]) u""",
                                [now, rng.sample(users, len(users))])
                    if not rollback:
                        acknowledged[index] += len(rows) + len(users)
                except psycopg.Error as error:  # a deadlock or lost update would land here
                    failures.append(f"{error.sqlstate}: {error}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert failures == []
    assert scalar(conn, "select count(*) from public.generation_logs where user_id = any(%s)", [users]) \
        == sum(acknowledged)
    assert rollup_drift(conn) == 0
