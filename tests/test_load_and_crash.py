"""Load and crash tests: many concurrent writers, then a server killed with SIGKILL.

They take a minute or so and run only with AURORA_LONG_TESTS=1 (.ci/run sets it):

    AURORA_LONG_TESTS=1 scripts/test -k load_and_crash

- Load: pgbench with 8 clients (AURORA_LOAD_CLIENTS) for 20 s (AURORA_LOAD_SECONDS) logs calls
  for 6 overlapping users, through log_generation (1 row a transaction) and multi-row
  INSERTs (8 rows a transaction, users in random order). Then: no failed transaction and no
  deadlock, rows in the table = rows pgbench saw committed, every rollup, spend total and
  per-generator counter equal to plain SQL over the raw rows, exactly one cost alert per
  user, day and level crossed, each also heard once by a LISTEN connection.
- Crash: the same load plus Python clients that record the ids of calls they saw committed,
  on a throwaway cluster with fsync on; the postmaster is killed with SIGKILL mid-load (once
  alone, so its backends wind down by themselves, once with all its backends), the cluster
  restarts through crash recovery, and every committed call is there, no rolled-back one is,
  and the derived tables still equal the raw rows. The load then goes on on the recovered
  cluster and the checks are repeated.

Figures go to $AURORA_RUN_DIR/reliability/*.json (the README's Reliability section).
"""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.types.json import Jsonb

from conftest import PGBIN, PGPORT, REPO, RUN_DIR, Cluster, scalar

pytestmark = pytest.mark.skipif(
    os.environ.get("AURORA_LONG_TESTS") != "1",
    reason="load and crash tests run with AURORA_LONG_TESTS=1 (.ci/run sets it)",
)

LOAD = REPO / "tests" / "load"
CONSISTENCY_CHECK = REPO / "tests" / "isolation" / "consistency_check.sql"
FIGURES = RUN_DIR / "reliability"

CLIENTS = int(os.environ.get("AURORA_LOAD_CLIENTS", "8"))
SECONDS = int(os.environ.get("AURORA_LOAD_SECONDS", "20"))
USERS = 6
# pgbench scripts: file, weight, rows each transaction logs.
SCRIPTS = (("log_one.sql", 4, 1), ("insert_multi.sql", 1, 8))
MAX_ROWS_PER_TRANSACTION = max(rows for _, _, rows in SCRIPTS)
MAX_CALL_COST = Decimal("0.06")  # Midjourney, the dearest of the built-in generators
DAILY_LIMIT = Decimal("1.00")
ALERT_LEVELS = (1, 2, 3, 5, 10, 20, 50, 100, 200, 500)


def user_id(n):
    """The users the pgbench scripts log for: aaaaaaaa-0000-4000-8000-<n, 12 digits>."""
    return uuid.UUID(f"aaaaaaaa-0000-4000-8000-{n:012d}")


USER_IDS = [user_id(n) for n in range(1, USERS + 1)]


def prepare(conn):
    """Users, small daily budgets with many alert levels, and the consistency check."""
    for uid in USER_IDS:
        conn.execute("insert into auth.users (id, email) values (%s, %s)", [uid, f"load-{uid.hex[-4:]}@example.com"])
        conn.execute("insert into aurora_telemetry.budgets (user_id, daily_limit) values (%s, %s)", [uid, DAILY_LIMIT])
    conn.execute("insert into aurora_telemetry.settings (name, value) values ('cost_alert_levels', %s)",
                 [json.dumps(ALERT_LEVELS)])
    conn.execute(CONSISTENCY_CHECK.read_text())


# --------------------------------------------------------------------------
# pgbench
# --------------------------------------------------------------------------

@dataclass
class PgbenchRun:
    returncode: int
    output: str
    processed: int = 0            # transactions pgbench saw committed (its report)
    failed: int = 0               # serialization or deadlock failures (its report)
    per_script: dict = field(default_factory=dict)  # script file -> committed transactions (its log)
    tps: float = 0.0

    @property
    def acknowledged_rows(self):
        rows = {name: n for name, _, n in SCRIPTS}
        return sum(count * rows[script] for script, count in self.per_script.items())

    @property
    def aborted_clients(self):
        return len(re.findall(r"client \d+ (?:script \d+ )?aborted", self.output))


def pgbench_command(cluster, dbname, clients, seconds, log_dir):
    """pgbench with both scripts, and a log line per transaction in log_dir: its report's
    per-script counts are not exact with several threads (they share unlocked counters)."""
    cmd = [str(PGBIN / "pgbench"), "-n", "-h", cluster.host, "-p", str(cluster.port), "-U", "postgres",
           "-c", str(clients), "-j", str(min(clients, 2)), "-T", str(seconds), "-D", f"users={USERS}",
           "--log", f"--log-prefix={log_dir}/pgbench"]
    for name, weight, _ in SCRIPTS:
        cmd += ["-f", f"{LOAD / name}@{weight}"]
    return cmd + [dbname]


def parse_pgbench(returncode, output, log_dir):
    run = PgbenchRun(returncode, output)
    if m := re.search(r"number of transactions actually processed: (\d+)", output):
        run.processed = int(m.group(1))
    if m := re.search(r"number of failed transactions: (\d+)", output):
        run.failed = int(m.group(1))
    if m := re.search(r"^tps = ([\d.]+)", output, re.M):
        run.tps = float(m.group(1))
    # Log lines: client_id transaction_no time script_no time_epoch time_us; time is
    # "failed" (or "serialization"/"deadlock") for a failed transaction.
    run.per_script = {name: 0 for name, _, _ in SCRIPTS}
    for log in Path(log_dir).glob("pgbench.*"):
        for line in log.read_text().splitlines():
            fields = line.split()
            if fields[2].isdigit():
                run.per_script[SCRIPTS[int(fields[3])][0]] += 1
    assert sum(run.per_script.values()) == run.processed, f"pgbench's log and report disagree:\n{output}"
    return run


def pgbench(cluster, dbname, log_dir, clients=CLIENTS, seconds=SECONDS):
    log_dir.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(pgbench_command(cluster, dbname, clients, seconds, log_dir),
                          capture_output=True, text=True)
    return parse_pgbench(done.returncode, done.stdout + done.stderr, log_dir)


# --------------------------------------------------------------------------
# Checks
# --------------------------------------------------------------------------

def consistency(conn):
    row = conn.execute("select * from public.consistency_check()").fetchone()
    names = ("logged", "rollup_drift", "spend_drift", "hourly_drift", "pending", "cost_alerts", "claim_drift")
    return dict(zip(names, row[:7]))


def assert_consistent(conn):
    """Every derived figure equals plain SQL over the raw rows; returns the check's row."""
    figures = consistency(conn)
    drift = {k: v for k, v in figures.items() if k not in ("logged", "cost_alerts") and v != 0}
    assert drift == {}, f"derived tables differ from the raw rows: {figures}"
    assert scalar(conn, "select count(*) from aurora_telemetry.alert_failures") == 0, \
        conn.execute("select error from aurora_telemetry.alert_failures limit 5").fetchall()
    return figures


def assert_one_cost_alert_per_crossing(conn):
    """Exactly one cost alert per user, UTC day and level whose threshold the day's spend
    reached, sent by the transaction that crossed it; returns their ids."""
    levels = [Decimal(level) for level in ALERT_LEVELS]
    spend = conn.execute("""select user_id, date_trunc('day', created_at, 'UTC'), sum(cost)
                              from public.generation_logs group by 1, 2""").fetchall()
    due = {(u, day, level) for u, day, total in spend for level in levels if DAILY_LIMIT * level <= total}
    alerts = conn.execute("""select id, user_id, window_start, level, payload from aurora_telemetry.alerts
                              where kind = 'cost_alert' and period = 'day'""").fetchall()
    sent = [(u, day, Decimal(level)) for _, u, day, level, _ in alerts]
    assert len(sent) == len(set(sent)), "a cost alert was sent twice"
    assert set(sent) == due
    for _, _, _, level, payload in alerts:
        threshold, cost = Decimal(str(payload["threshold"])), Decimal(str(payload["daily_cost"]))
        # Sent by the transaction that crossed: at or over the threshold, by less than one
        # transaction's worth of calls.
        assert threshold == DAILY_LIMIT * Decimal(level)
        assert threshold <= cost < threshold + MAX_ROWS_PER_TRANSACTION * MAX_CALL_COST, payload
    return {a[0] for a in alerts}


def deadlocks(cluster, dbname):
    with cluster.connect() as conn:
        return scalar(conn, "select deadlocks from pg_stat_database where datname = %s", [dbname])


def rows_logged(conn):
    return scalar(conn, "select count(*) from public.generation_logs where user_id = any(%s)", [USER_IDS])


def save_figures(name, figures):
    FIGURES.mkdir(parents=True, exist_ok=True)
    (FIGURES / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"\n{name}: {json.dumps(figures, default=str)}")


# --------------------------------------------------------------------------
# Load
# --------------------------------------------------------------------------

def test_concurrent_load_keeps_rollups_exact_without_deadlocks_or_lost_rows(cluster, tmp_path):
    with cluster.database("load") as dbname, cluster.connect(dbname) as conn:
        prepare(conn)
        deadlocks_before = deadlocks(cluster, dbname)
        with cluster.connect(dbname) as listener:
            listener.execute("listen cost_alert")
            started = time.monotonic()
            run = pgbench(cluster, dbname, tmp_path)
            elapsed = time.monotonic() - started
            heard = [json.loads(n.payload) for n in listener.notifies(timeout=2.0)]

        assert run.returncode == 0, run.output
        assert run.failed == 0, run.output
        assert run.processed > 0
        assert "deadlock" not in run.output
        time.sleep(1.0)  # backends report their statistics as they exit
        assert deadlocks(cluster, dbname) == deadlocks_before

        # Nothing lost, nothing counted twice.
        rows = rows_logged(conn)
        assert rows == run.acknowledged_rows
        figures = assert_consistent(conn)
        alert_ids = assert_one_cost_alert_per_crossing(conn)
        # Each alert was also delivered once, at commit, to a listener.
        heard_ids = [p["alert_id"] for p in heard]
        assert sorted(heard_ids) == sorted(alert_ids)

        save_figures("load", {
            "clients": CLIENTS, "seconds": SECONDS, "elapsed_seconds": round(elapsed, 1),
            "users": USERS, "transactions": run.processed, "per_script": run.per_script,
            "failed_transactions": run.failed, "tps": run.tps, "rows": rows,
            "rollup_rows": scalar(conn, "select count(*) from aurora_telemetry.usage_rollups"),
            "cost_alerts": len(alert_ids), "cost_alerts_heard": len(heard_ids), **figures,
        })


# --------------------------------------------------------------------------
# Crash
# --------------------------------------------------------------------------

@dataclass
class CrashCluster:
    cluster: Cluster
    run_dir: Path
    env: dict

    def script(self, action):
        return subprocess.run([str(REPO / "scripts" / "cluster"), action], env=self.env,
                              capture_output=True, text=True)

    def postmaster_pid(self):
        return int((self.run_dir / "data" / "postmaster.pid").read_text().split()[0])

    def log(self):
        return (self.run_dir / "postgres.log").read_text(errors="replace")


@pytest.fixture
def crash_cluster():
    """A throwaway cluster of its own (scripts/cluster, own run dir and port), durable as in
    production: fsync on (scripts/cluster turns it off for speed; ALTER SYSTEM wins)."""
    run_dir = RUN_DIR / "crash-cluster"
    env = {**os.environ, "AURORA_RUN_DIR": str(run_dir), "AURORA_PGPORT": str(PGPORT + 9)}
    c = CrashCluster(Cluster(str(run_dir), PGPORT + 9), run_dir, env)
    c.script("stop")  # left over from an interrupted run
    shutil.rmtree(run_dir, ignore_errors=True)
    started = c.script("start")
    assert started.returncode == 0, f"crash cluster did not start:\n{started.stderr}"
    try:
        with c.cluster.connect() as admin:
            admin.execute("alter system set fsync = on")
            admin.execute("select pg_reload_conf()")
        yield c
    finally:
        c.script("stop")
        shutil.rmtree(run_dir, ignore_errors=True)


def alive(pid):
    """Whether a process exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (FileNotFoundError, IndexError, ValueError):
            pass
    return found


def kill_postmaster(c, with_backends):
    """SIGKILL the postmaster (and, if asked, every process it started, at once); returns
    once none of them is left. Only pids of this test's own cluster are signalled."""
    pid = c.postmaster_pid()
    processes = children(pid)
    os.kill(pid, signal.SIGKILL)
    if with_backends:
        for child in processes:
            try:
                os.kill(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
    # Gone, and the postmaster reaped too: while it is a zombie its pid still answers, and
    # pg_ctl would take the cluster for running.
    deadline = time.monotonic() + 60
    while Path(f"/proc/{pid}").exists() or any(alive(p) for p in processes):
        assert time.monotonic() < deadline, "the killed cluster's processes did not go away"
        time.sleep(0.1)
    return len(processes)


class Writer(threading.Thread):
    """An application connection logging calls (1 to 3 a transaction, random users) and
    recording the ids of calls in transactions it saw commit, and of those in the
    transaction that was cut off (committed or not: in doubt)."""

    def __init__(self, cluster, dbname, seed):
        super().__init__(daemon=True)
        self.cluster, self.dbname, self.rng = cluster, dbname, random.Random(seed)
        self.acknowledged, self.in_doubt, self.error = [], [], None

    def run(self):
        try:
            conn = self.cluster.connect(self.dbname)
        except psycopg.Error as error:
            self.error = error
            return
        with conn:
            while True:
                ids = []
                try:
                    with conn.transaction():
                        conn.execute("set local role service_role")
                        for _ in range(self.rng.randint(1, 3)):
                            ids.append(conn.execute(
                                "select public.log_generation(%s, %s, %s, %s, metadata => %s)",
                                [self.rng.choice(USER_IDS), self.rng.choice(("Claude", "Imagen-3", "Midjourney")),
                                 self.rng.randrange(20, 20000), self.rng.random() > 0.1,
                                 Jsonb({"client": "crash-test"})]).fetchone()[0])
                except psycopg.Error as error:  # the server went away
                    self.in_doubt.extend(ids)
                    self.error = error
                    return
                self.acknowledged.extend(ids)


def crash_round(c, dbname, with_backends, log_dir):
    """Load, SIGKILL mid-way, restart; returns what the clients saw."""
    log_dir.mkdir(parents=True)
    bench = subprocess.Popen(pgbench_command(c.cluster, dbname, 6, 120, log_dir), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    writers = [Writer(c.cluster, dbname, seed) for seed in range(2)]
    for w in writers:
        w.start()
    time.sleep(6)
    assert bench.poll() is None, "pgbench ended before the crash"
    processes = kill_postmaster(c, with_backends)
    output, _ = bench.communicate(timeout=120)
    for w in writers:
        w.join(timeout=120)
        assert not w.is_alive()
        assert w.error is not None, "a client did not notice the crash"
    run = parse_pgbench(bench.returncode, output, log_dir)
    assert run.returncode != 0 and run.aborted_clients > 0, f"pgbench did not see the crash:\n{output}"

    restarted = c.script("start")
    assert restarted.returncode == 0, f"restart failed:\n{restarted.stderr}\n{c.log()[-3000:]}"
    return run, writers, processes


def test_committed_rows_survive_sigkill_of_the_postmaster_and_rollups_stay_exact(crash_cluster, tmp_path):
    c = crash_cluster
    dbname = "aurora_crash"
    with c.cluster.connect() as admin:
        admin.execute(f"create database {dbname}")
    with c.cluster.connect(dbname) as conn:
        conn.execute("create extension aurora_telemetry")
        prepare(conn)

    acknowledged, in_doubt, pgbench_rows, rounds = set(), set(), 0, []
    for crash, with_backends in enumerate((False, True), 1):
        run, writers, processes = crash_round(c, dbname, with_backends, tmp_path / f"crash{crash}")
        acknowledged |= {i for w in writers for i in w.acknowledged}
        in_doubt |= {i for w in writers for i in w.in_doubt}
        pgbench_rows += run.acknowledged_rows
        # The restart went through crash recovery.
        assert c.log().count("database system was not properly shut down; automatic recovery in progress") == crash
        with c.cluster.connect(dbname) as conn:
            present = {r[0] for r in conn.execute(
                "select id from public.generation_logs where metadata ->> 'client' = 'crash-test'")}
            lost = acknowledged - present
            assert not lost, f"{len(lost)} calls seen committed are gone after crash {crash}"
            phantom = present - acknowledged - in_doubt
            assert not phantom, f"{len(phantom)} calls that never committed are present"
            # pgbench's transactions: all it saw committed, plus at most the ones cut off
            # mid-commit (one per client).
            others = scalar(conn, """select count(*) from public.generation_logs
                                      where metadata ->> 'client' is distinct from 'crash-test'""")
            assert pgbench_rows <= others <= pgbench_rows + crash * 6 * MAX_ROWS_PER_TRANSACTION
            pgbench_rows = others  # the cut-off ones that did commit count from now on
            figures = assert_consistent(conn)
            assert_one_cost_alert_per_crossing(conn)
        rounds.append({
            "crash": crash, "killed": "postmaster and its backends" if with_backends else "postmaster alone",
            "processes_of_the_postmaster": processes, "pgbench_transactions_committed": run.processed,
            "pgbench_clients_cut_off": run.aborted_clients,
            "python_calls_acknowledged": sum(len(w.acknowledged) for w in writers),
            "python_calls_in_doubt": sum(len(w.in_doubt) for w in writers),
            "in_doubt_present": len(in_doubt & present), "rows_after_recovery": figures["logged"],
            **{k: v for k, v in figures.items() if k != "logged"},
        })

    # The recovered cluster takes load again and stays exact.
    after = pgbench(c.cluster, dbname, tmp_path / "after", clients=8, seconds=5)
    assert after.returncode == 0 and after.failed == 0, after.output
    with c.cluster.connect(dbname) as conn:
        assert rows_logged(conn) == pgbench_rows + after.acknowledged_rows + len(present)
        figures = assert_consistent(conn)
        assert_one_cost_alert_per_crossing(conn)
    save_figures("crash", {"rounds": rounds, "after_recovery": {
        "transactions": after.processed, "rows": after.acknowledged_rows, **figures}})
