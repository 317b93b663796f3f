"""CSV export: RFC 4180 text that loads back into identical rows.

Hostile values (commas, quotes, every kind of line break, an empty string next to NULL, a
line that is just `\\.`, backslashes, non-ASCII, JSON with escaped quotes) go in; the CSV a
user exports must load back with `COPY ... FROM STDIN (FORMAT csv, HEADER)` into a table of
generation_logs' shape giving exactly the user's rows, whatever the session's DateStyle and
TimeZone, and Python's csv reader (a spreadsheet's view) must give back the same strings.
"""

import csv
import datetime as dt
import io

import pytest
from psycopg.types.json import Jsonb

from conftest import as_role, make_user, raises_pg_error, scalar

UTC = dt.timezone.utc
HEADER = ["id", "user_id", "generator", "time_ms", "cost", "prompt_length", "success",
          "error_message", "metadata", "created_at"]

HOSTILE_MESSAGES = [
    'rate limit, retry "later"',
    "line one\nline two",
    "windows\r\nline break",
    "old mac\rbreak",
    "",
    None,
    "\\.",
    "back\\slash \\N and \\\\",
    '"',
    ",",
    "  padded  ",
    "émoji 🚀 ünïcödé",
    "=HYPERLINK(\"http://example.com\")",
    "<script>alert(1)</script>",
]
HOSTILE_METADATA = [
    None,
    {"vibe": "calm, \"serene\"", "note": "multi\nline\r\nvalue"},
    {"nested": {"quote": "\"", "comma": ",", "backslash": "\\"}, "list": [1, "two, three"]},
    {},
    {"empty": ""},
]


@pytest.fixture(scope="module")
def logs(db):
    """Alice with hostile rows over several days; Bob with rows of his own."""
    base = dt.datetime(2026, 3, 14, 15, 9, 26, 535897, tzinfo=UTC)
    with db.connect() as conn:
        alice, bob = make_user(conn), make_user(conn)
        rows = []
        for i, message in enumerate(HOSTILE_MESSAGES):
            metadata = HOSTILE_METADATA[i % len(HOSTILE_METADATA)]
            rows.append((alice, ("Claude", "Imagen-3", "Midjourney")[i % 3], 100 * i + 7,
                         None if i % 4 else "0.123457", i * 11, message is None or i % 2 == 0,
                         message, Jsonb(metadata) if metadata is not None else None,
                         base + dt.timedelta(hours=7 * i, microseconds=i)))
        for i in range(5):
            rows.append((bob, "Claude", 999, None, 1, False, f"bob's error {i}", None,
                         base + dt.timedelta(hours=5 * i)))
        with as_role(conn, "service_role") as cur:
            cur.executemany(
                """insert into public.generation_logs
                       (user_id, generator, time_ms, cost, prompt_length, success, error_message, metadata, created_at)
                   values (%s, %s, %s, %s, %s, %s, %s, %s, %s)""", rows)
    return alice, bob, base


def export_as(conn, user, **args):
    names = ", ".join(f"{k} => %({k})s" for k in args)
    with as_role(conn, "authenticated", sub=user) as cur:
        return scalar(cur, f"select public.export_generation_logs_csv({names})", args)


def load_back(conn, text, datestyle="ISO, MDY", timezone="UTC"):
    """COPY the CSV into a temporary table shaped like generation_logs; its rows."""
    with conn.transaction():
        conn.execute(f"set local datestyle = '{datestyle}'")
        conn.execute(f"set local timezone = '{timezone}'")
        conn.execute("create temp table loaded (like public.generation_logs) on commit drop")
        with conn.cursor().copy("copy loaded from stdin (format csv, header)") as copy:
            copy.write(text.encode())
        conn.execute("set local datestyle = 'ISO, MDY'")  # what psycopg reads
        rows = conn.execute("select * from loaded order by created_at, id").fetchall()
    return rows


def stored(conn, user, since=None, until=None):
    return conn.execute(
        """select * from public.generation_logs
            where user_id = %s and (%s::timestamptz is null or created_at >= %s)
              and (%s::timestamptz is null or created_at < %s)
            order by created_at, id""", [user, since, since, until, until]).fetchall()


def test_the_export_loads_back_into_identical_rows(conn, logs):
    alice, _, _ = logs
    text = export_as(conn, alice)
    expected = stored(conn, alice)
    assert len(expected) == len(HOSTILE_MESSAGES)
    assert load_back(conn, text) == expected


@pytest.mark.parametrize("datestyle, timezone", [("SQL, DMY", "America/New_York"), ("German", "Asia/Kolkata"),
                                                 ("Postgres, YMD", "Pacific/Chatham")])
def test_the_export_loads_back_under_any_datestyle_and_timezone(conn, logs, datestyle, timezone):
    alice, _, _ = logs
    with conn.transaction():
        conn.execute(f"set local datestyle = '{datestyle}'")
        conn.execute(f"set local timezone = '{timezone}'")
        text = export_as(conn, alice)
        conn.execute("set local datestyle = 'ISO, MDY'")
    assert load_back(conn, text, datestyle=datestyle, timezone=timezone) == stored(conn, alice)


def test_the_text_is_rfc_4180_and_a_csv_reader_gets_every_value_back(conn, logs):
    alice, _, _ = logs
    text = export_as(conn, alice)
    assert text.startswith(",".join(HEADER) + "\r\n")
    assert text.endswith("\r\n")
    records = list(csv.reader(io.StringIO(text, newline="")))
    assert records[0] == HEADER
    rows = records[1:]
    expected = conn.execute(
        """select id::text, generator, error_message, metadata::text, created_at, success
             from public.generation_logs where user_id = %s order by created_at, id""", [alice]).fetchall()
    assert len(rows) == len(expected)
    for row, (id_, generator, message, metadata, created_at, success) in zip(rows, expected):
        record = dict(zip(HEADER, row))
        assert (record["id"], record["generator"]) == (id_, generator)
        # csv.reader cannot tell NULL from '' (RFC 4180 has no NULL); COPY can (above).
        assert record["error_message"] == (message or "")
        assert record["metadata"] == (metadata or "")
        assert dt.datetime.fromisoformat(record["created_at"].replace("Z", "+00:00")) == created_at
        assert record["success"] == ("true" if success else "false")
    assert {row[7] for row in rows} >= {m for m in HOSTILE_MESSAGES if m}


def test_null_and_empty_messages_stay_apart(conn, logs):
    alice, _, _ = logs
    loaded = load_back(conn, export_as(conn, alice))
    messages = [row[7] for row in loaded]
    assert None in messages and "" in messages
    assert messages.count(None) == scalar(
        conn, "select count(*) from public.generation_logs where user_id = %s and error_message is null", [alice])


def test_since_and_until_select_a_half_open_range(conn, logs):
    alice, _, base = logs
    since, until = base + dt.timedelta(hours=14), base + dt.timedelta(hours=42, microseconds=6)
    text = export_as(conn, alice, since=since, until=until)
    loaded = load_back(conn, text)
    assert loaded == stored(conn, alice, since, until)
    assert 0 < len(loaded) < len(HOSTILE_MESSAGES)
    # A range with nothing in it is the header alone.
    assert export_as(conn, alice, since=base - dt.timedelta(days=9), until=base) == ",".join(HEADER) + "\r\n"


def test_authorization_is_as_for_the_statistics(conn, logs):
    alice, bob, _ = logs
    with raises_pg_error("42501", "only their own"), as_role(conn, "authenticated", sub=alice) as cur:
        cur.execute("select public.export_generation_logs_csv(user_id => %s)", [bob])
    with raises_pg_error("42501"), as_role(conn, "anon") as cur:
        cur.execute("select public.export_generation_logs_csv(user_id => %s)", [alice])
    with raises_pg_error("22004"), as_role(conn, "authenticated", claims={"role": "authenticated"}) as cur:
        cur.execute("select public.export_generation_logs_csv()")
    with as_role(conn, "service_role") as cur:
        text = scalar(cur, "select public.export_generation_logs_csv(user_id => %s)", [bob])
    assert load_back(conn, text) == stored(conn, bob)
    assert str(alice) not in text


def test_a_reversed_range_is_an_error(conn, logs):
    alice, _, base = logs
    with raises_pg_error("22023", "since must not be later than until"):
        export_as(conn, alice, since=base, until=base - dt.timedelta(seconds=1))
