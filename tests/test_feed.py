"""The opt-in live feed: one generation_logged notification per user per committed
transaction, with counts, not one per row."""

from decimal import Decimal

import pytest

from conftest import as_role, make_user
from test_alerts import listening, setting


def insert_many(conn, rows):
    with as_role(conn, "service_role") as cur:
        cur.execute(
            """insert into public.generation_logs (user_id, generator, time_ms, success)
               select u, 'Claude', 100, n %% 4 <> 0
                 from unnest(%s::uuid[]) u, generate_series(1, %s) n""",
            rows)


def test_a_bulk_insert_sends_one_event_per_user_with_counts(db, conn):
    first, second = make_user(conn), make_user(conn)
    with setting(conn, "realtime_feed", True), listening(db, "generation_logged") as heard:
        insert_many(conn, [[first, second], 250])
        events = {p["user_id"]: p for _, p in heard()}
    assert set(events) == {str(first), str(second)}
    for payload in events.values():
        assert (payload["generations"], payload["successful"], payload["failed"]) == (250, 188, 62)
        assert Decimal(str(payload["cost"])) == Decimal("0.015") * 188


def test_nothing_is_sent_when_off_or_rolled_back(db, conn):
    user = make_user(conn)
    with listening(db, "generation_logged") as heard:
        insert_many(conn, [[user], 3])  # the feed is off by default
        with setting(conn, "realtime_feed", True):
            with pytest.raises(RuntimeError):
                with as_role(conn, "service_role") as cur:
                    cur.execute("insert into public.generation_logs (user_id, generator, time_ms) values (%s, 'Claude', 1)",
                                [user])
                    raise RuntimeError("rolled back")
        assert heard() == []
