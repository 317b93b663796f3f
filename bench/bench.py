#!/usr/bin/env python3
"""The benchmark of issue 7: aurora_telemetry against the seed's design and a bare table.

Run through `scripts/bench` (which builds, starts the benchmark cluster and tunes it); this
driver creates one database per design in that cluster, loads the same rows into each,
runs every workload and writes the report. `--smoke` uses tiny sizes and checks that the
harness works end to end. Exit status: 0, or 1 when a phase failed or the designs disagree
on a figure (the report is written either way).

Designs, each in its own database:
  bare    public.generation_logs with the same columns and indexes, nothing else
  seed    the seed document's table, policies and cost-alert trigger, plain SQL statistics
  aurora  CREATE EXTENSION aurora_telemetry with its defaults (every trigger and alert on)
"""

import argparse
import datetime as dt
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SQL = BENCH / "sql"
PGBENCH_SCRIPTS = BENCH / "pgbench"
PGBIN = Path("/usr/lib/postgresql/15/bin")

DESIGNS = ("bare", "seed", "aurora")
LABEL = {"bare": "Bare", "seed": "Seed", "aurora": "aurora_telemetry", "seed_as_written": "Seed as written"}
DBNAME = {"bare": "bench_bare", "seed": "bench_seed", "aurora": "bench_aurora"}
# What each design's database is made of, in order. The Seed and aurora_telemetry run on
# the same Supabase stand-in (roles, auth schema, default privileges) as the tests.
SUPABASE = REPO / "tests" / "fixtures" / "supabase_auth.sql"
SETUP_FILES = {
    "bare": [SQL / "common.sql", SQL / "bare.sql", SQL / "plain_api.sql"],
    "seed": [SUPABASE, SQL / "common.sql", SQL / "seed.sql", SQL / "plain_api.sql"],
    "aurora": [SUPABASE, SQL / "common.sql", SQL / "aurora.sql"],
}
SECONDARY_INDEXES = {
    "generation_logs_user_created_idx": "(user_id, created_at desc)",
    "generation_logs_created_idx": "(created_at)",
    "generation_logs_generator_created_idx": "(generator, created_at)",
}

# User numbers (bench.uid(n)); each workload has users of its own.
STATS_USER = 1            # + size index: the users whose statistics are read
POOL_USER = 1000          # + 100 x level index + client: the insert workloads' users
LOG_GENERATION_LEVEL = 9  # pool level index used by the log_generation() runs
BULK_USER = 5000          # + repetition x bulk_users + k
BACKFILL_USER = 6000      # + size index
BACKGROUND_USER = 10000   # everyone else
MAX_CLIENTS = 8


@dataclass
class Sizes:
    stats_sizes: list
    history_days: int
    background_users: int
    background_rows: int
    insert_levels: list
    insert_clients: list
    insert_seconds: int       # pgbench -T; 0: use insert_transactions
    insert_transactions: int  # pgbench -t per client (smoke)
    insert_repeats: int       # runs per configuration; the best counts
    bulk_rows: int
    bulk_users: int
    bulk_reps: int
    call_budget_s: float
    max_calls: int
    min_calls: int
    load_batch: int
    background_batch: int
    backfill_sizes: list
    profile_seconds: int


FULL = Sizes(
    stats_sizes=[10_000, 100_000, 1_000_000], history_days=180,
    background_users=500, background_rows=50_000,
    insert_levels=[0, 1_000, 10_000], insert_clients=[1, 8],
    insert_seconds=10, insert_transactions=0, insert_repeats=3,
    bulk_rows=10_000, bulk_users=100, bulk_reps=3,
    call_budget_s=3.0, max_calls=2_000, min_calls=5,
    load_batch=100_000, background_batch=1_000, backfill_sizes=[1_000, 2_000, 4_000, 8_000], profile_seconds=5,
)
SMOKE = Sizes(
    stats_sizes=[100, 1_000, 3_000], history_days=60,
    background_users=20, background_rows=400,
    insert_levels=[0, 10, 100], insert_clients=[1, 8],
    insert_seconds=0, insert_transactions=15, insert_repeats=1,
    bulk_rows=200, bulk_users=10, bulk_reps=1,
    call_budget_s=0.1, max_calls=20, min_calls=3,
    load_batch=1_000, background_batch=100, backfill_sizes=[100, 200], profile_seconds=1,
)


def log(message):
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------------------------------
# Connections, SQL files, /proc
# ---------------------------------------------------------------------------------------

class Cluster:
    def __init__(self, host, port):
        self.host, self.port = host, port

    def connect(self, dbname="postgres", user="postgres", **kwargs):
        return psycopg.connect(host=self.host, port=self.port, user=user, dbname=dbname,
                               autocommit=True, **kwargs)

    def psql_file(self, dbname, path):
        cmd = [str(PGBIN / "psql"), "-X", "-q", "-h", self.host, "-p", str(self.port), "-U", "postgres",
               "-d", dbname, "-v", "ON_ERROR_STOP=1", "-f", str(path)]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{path.name} failed in {dbname}:\n{result.stderr}")


def proc_status(pid):
    """VmHWM, VmRSS, RssAnon, RssShmem of a process in kB (empty when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            out = {}
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS", "RssAnon", "RssShmem"):
                    out[key] = int(value.split()[0])
            return out
    except OSError:
        return {}


def reset_peak(pid):
    """Reset the process's peak RSS (VmHWM) to its current RSS; needs root."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler(threading.Thread):
    """Samples a backend's private memory (RssAnon) every millisecond."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, proc_status(self.pid).get("RssAnon", 0))
            time.sleep(0.001)

    def finish(self):
        self.stop.set()
        self.join()
        return self.peak


def percentile(values, q):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def mb(kb):
    return None if kb is None else kb / 1024.0


# ---------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------

@dataclass
class Results:
    meta: dict = field(default_factory=dict)
    load: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)
    stats: list = field(default_factory=list)
    inserts: list = field(default_factory=list)
    bulk: list = field(default_factory=list)
    backfill: list = field(default_factory=list)
    profile: dict = field(default_factory=dict)
    as_written: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    notes: list = field(default_factory=list)


class Bench:
    def __init__(self, args, sizes):
        self.args, self.sz = args, sizes
        self.cluster = Cluster(args.host, args.port)
        self.r = Results()
        self.smoke = args.smoke
        self.workers = os.cpu_count() or 2

    # -- setup ---------------------------------------------------------------------------

    def users(self):
        users = [STATS_USER + i for i in range(len(self.sz.stats_sizes))]
        for level in list(range(len(self.sz.insert_levels))) + [LOG_GENERATION_LEVEL]:
            users += [POOL_USER + 100 * level + c for c in range(MAX_CLIENTS)]
        users += [BULK_USER + i for i in range(self.sz.bulk_reps * self.sz.bulk_users)]
        users += [BACKFILL_USER + i for i in range(len(self.sz.backfill_sizes))]
        users += [BACKGROUND_USER + i for i in range(self.sz.background_users)]
        return users

    def create_databases(self):
        with self.cluster.connect() as conn:
            self.cluster.psql_file("postgres", SQL / "roles.sql")
            for design in DESIGNS:
                conn.execute(f"drop database if exists {DBNAME[design]} with (force)")
                conn.execute(f"create database {DBNAME[design]}")
                conn.execute(f"alter database {DBNAME[design]} set timezone = 'UTC'")
        for design in DESIGNS:
            for path in SETUP_FILES[design]:
                self.cluster.psql_file(DBNAME[design], path)
        with self.cluster.connect(DBNAME["aurora"]) as conn:
            self.r.meta["extension_version"] = conn.execute(
                "select extversion from pg_extension where extname = 'aurora_telemetry'").fetchone()[0]
            self.r.meta["server_version"] = conn.execute("select version()").fetchone()[0]
            self.r.meta["settings"] = dict(conn.execute(
                """select name, current_setting(name) from pg_settings
                    where name in ('shared_buffers', 'fsync', 'synchronous_commit', 'wal_level', 'jit',
                                   'autovacuum', 'max_wal_size', 'checkpoint_timeout', 'work_mem',
                                   'shared_preload_libraries', 'pg_stat_statements.track')
                    order by name""").fetchall())
            self.anchor = conn.execute("select now()").fetchone()[0]
            self.day_start = conn.execute("select date_trunc('day', %s::timestamptz, 'UTC')", (self.anchor,)).fetchone()[0]
            self.month_start = conn.execute("select date_trunc('month', %s::timestamptz, 'UTC')", (self.anchor,)).fetchone()[0]

    def insert_sql(self, design, created_at=True):
        """INSERT ... SELECT from bench.rows(first_user, n_users, row_from, row_to, n_total, t_from, t_to, stream)."""
        cols = ["user_id", "generator", "time_ms", "cost", "prompt_length", "success", "error_message", "metadata"]
        if design == "aurora":
            cols.remove("cost")  # priced by the extension's row trigger
        if created_at:
            cols.append("created_at")
        c = ", ".join(cols)
        return (f"insert into public.generation_logs ({c}) select {c} "
                "from bench.rows(%s, %s, %s, %s, %s, %s, %s, %s)")

    def load(self, design):
        """The same rows in every design; aurora's go through all its triggers. Batches of
        consecutive rows (a stretch of days each) run on as many connections as there are
        cores, one transaction per batch."""
        sz, db = self.sz, DBNAME[design]
        history_from = self.anchor - dt.timedelta(days=sz.history_days)
        # (what, first user, users, rows, from, to, stream, rows per batch). aurora_telemetry's
        # commit work grows with the number of distinct (user, generator, hour) keys a
        # transaction touches, faster than linearly (see the backfill workload): batches are
        # cut so that each touches about a thousand keys, as a steady stream of logs would.
        parts = [("background", BACKGROUND_USER, sz.background_users, sz.background_rows, history_from, self.anchor, 1,
                  sz.background_batch)]
        for i, n in enumerate(sz.stats_sizes):
            parts.append((f"stats user {n:,}", STATS_USER + i, 1, n, history_from, self.anchor, 2 + i,
                          max(1, min(sz.load_batch, n // 10))))
        for i, level in enumerate(sz.insert_levels):
            if level:
                parts.append((f"{level:,} rows today x {MAX_CLIENTS} users", POOL_USER + 100 * i, MAX_CLIENTS,
                              level * MAX_CLIENTS, self.day_start, self.anchor, 10 + i, sz.load_batch))
        batches = []
        for _, first, users, rows, t_from, t_to, stream, per_batch in parts:
            for lo in range(0, rows, per_batch):
                batches.append((first, users, lo, min(rows, lo + per_batch), rows, t_from, t_to, stream))
        batches.sort(key=lambda b: b[2] - b[3])  # largest first
        total_rows = sum(p[3] for p in parts)
        workers = self.workers
        statement = self.insert_sql(design)
        with self.cluster.connect(db) as conn:
            if design != "bare":
                conn.execute("insert into auth.users (id) select bench.uid(n) from unnest(%s::int[]) n", (self.users(),))
            if design == "seed":
                # The seed's trigger keeps no state (it only notifies), and summing the
                # user's day for each of a million rows would take hours.
                conn.execute("alter table public.generation_logs disable trigger daily_cost_check")
            lock = threading.Lock()

            errors = []

            def worker():
                try:
                    with self.cluster.connect(db) as wconn:
                        while True:
                            with lock:
                                if not batches or errors:
                                    return
                                batch = batches.pop(0)
                            wconn.execute(statement, batch)
                except Exception as error:  # re-raised below
                    errors.append(error)

            started = time.perf_counter()
            threads = [threading.Thread(target=worker) for _ in range(workers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
            load_s = time.perf_counter() - started
            if design == "seed":
                conn.execute("alter table public.generation_logs enable trigger daily_cost_check")
            started = time.perf_counter()
            conn.execute("vacuum analyze")
            vacuum_s = time.perf_counter() - started
            self.mark = conn.execute("select clock_timestamp()").fetchone()[0]
        self.r.load[design] = {"rows": total_rows, "seconds": load_s, "vacuum_analyze_seconds": vacuum_s,
                               "workers": workers, "parts": [(p[0], p[3]) for p in parts]}
        log(f"{LABEL[design]}: loaded {total_rows:,} rows in {load_s:.1f} s on {workers} connections, "
            f"vacuum analyze {vacuum_s:.1f} s")

    def measure_sizes(self, design):
        with self.cluster.connect(DBNAME[design]) as conn:
            rows = conn.execute("select count(*) from public.generation_logs").fetchone()[0]
            heap, indexes = conn.execute(
                """select pg_table_size('public.generation_logs'), pg_indexes_size('public.generation_logs')""").fetchone()
            derived = conn.execute(
                """select c.relname, pg_total_relation_size(c.oid)
                     from pg_class c join pg_namespace n on n.oid = c.relnamespace
                    where n.nspname = 'aurora_telemetry' and c.relkind = 'r'
                    order by 2 desc""").fetchall()
            rollup_rows = 0
            if design == "aurora":
                rollup_rows = conn.execute("select count(*) from aurora_telemetry.usage_rollups").fetchone()[0]
        self.r.sizes[design] = {"rows": rows, "heap": heap, "indexes": indexes,
                                "derived": sum(s for _, s in derived), "derived_tables": derived,
                                "rollup_rows": rollup_rows}

    # -- statistics latency --------------------------------------------------------------

    def stat_queries(self):
        return {
            "stats, all time": "select * from public.get_user_usage_stats(%s::uuid, null::timestamptz, null::timestamptz)",
            "stats, current month": ("select * from public.get_user_usage_stats(%s::uuid, "
                                     "date_trunc('month', now(), 'UTC'), null::timestamptz)"),
            "timeseries, by day, 30 days": ("select * from public.get_user_usage_timeseries(%s::uuid, 'day', "
                                            "date_trunc('day', now(), 'UTC') - interval '29 days', null::timestamptz)"),
            "check_budget": "select * from public.check_budget(%s::uuid)",
        }

    def timed_calls(self, conn, query, params):
        sz = self.sz
        first = time.perf_counter()
        conn.execute(query, params, prepare=True).fetchall()
        first = time.perf_counter() - first
        # Slow queries get one warm-up call, fast ones a few (plan caching, buffers).
        for _ in range(0 if first > 0.05 else 5):
            conn.execute(query, params, prepare=True).fetchall()
        times, start = [], time.perf_counter()
        while len(times) < sz.max_calls and (len(times) < sz.min_calls or time.perf_counter() - start < sz.call_budget_s):
            t0 = time.perf_counter()
            conn.execute(query, params, prepare=True).fetchall()
            times.append(time.perf_counter() - t0)
        return times

    def measure_stats(self, design, variant=None, sizes_index=None, kinds=None):
        out = []
        with self.cluster.connect(DBNAME[design], user="bench_user") as conn:
            pid = conn.execute("select pg_backend_pid()").fetchone()[0]
            floor = self.timed_calls(conn, "select 1", None)
            for i, n in enumerate(self.sz.stats_sizes):
                if sizes_index is not None and i not in sizes_index:
                    continue
                uid = conn.execute("select bench.uid(%s)", (STATS_USER + i,)).fetchone()[0]
                # What PostgREST does for a request of this user (the role is bench_user's default).
                conn.execute("select set_config('request.jwt.claims', %s, false)",
                             (json.dumps({"sub": str(uid), "role": "authenticated"}),))
                for kind, query in self.stat_queries().items():
                    if kinds and kind not in kinds:
                        continue
                    reset = reset_peak(pid)
                    times = self.timed_calls(conn, query, (uid,))
                    hwm = proc_status(pid).get("VmHWM") if reset else None
                    sampler = RssSampler(pid)
                    sampler.start()
                    for _ in range(2 if times[0] > 0.05 else 20):
                        conn.execute(query, (uid,), prepare=True).fetchall()
                    anon = sampler.finish()
                    row = {"design": variant or design, "rows": n, "kind": kind, "calls": len(times),
                           "p50_ms": statistics.median(times) * 1000, "p99_ms": percentile(times, 0.99) * 1000,
                           "mean_ms": statistics.fmean(times) * 1000, "peak_rss_kb": hwm, "peak_anon_kb": anon,
                           "floor_ms": statistics.median(floor) * 1000}
                    out.append(row)
                    log(f"{LABEL[variant or design]}: {kind} for {n:,} rows: p50 {row['p50_ms']:.3f} ms, "
                        f"p99 {row['p99_ms']:.3f} ms ({len(times)} calls)")
        self.r.stats += out
        return out

    def answers(self, design, user):
        """Figures of the statistics functions for cross-checking the designs."""
        with self.cluster.connect(DBNAME[design], user="bench_user") as conn:
            uid = conn.execute("select bench.uid(%s)", (user,)).fetchone()[0]
            conn.execute("select set_config('request.jwt.claims', %s, false)",
                         (json.dumps({"sub": str(uid), "role": "authenticated"}),))
            q = self.stat_queries()
            stats = conn.execute(q["stats, all time"], (uid,)).fetchone()
            month = conn.execute(q["stats, current month"], (uid,)).fetchone()
            series = conn.execute(q["timeseries, by day, 30 days"], (uid,)).fetchall()
            budget = conn.execute(q["check_budget"], (uid,)).fetchone()

        def norm_stats(s):
            breakdown = {g: (v["count"], str(round(float(v["totalCost"]), 6)), str(round(float(v["averageTimeMs"]), 2)))
                         for g, v in s[5].items()}
            return (s[0], s[1], s[2], str(round(s[3], 6)), str(round(s[4], 2)), breakdown)

        return {
            "stats, all time": norm_stats(stats),
            "stats, current month": norm_stats(month),
            "timeseries, by day, 30 days": [(r[0].isoformat(), r[1], r[2], r[3], r[4], str(round(r[5], 6))) for r in series],
            "check_budget spend": (str(round(budget[1], 6)),
                                   str(round(budget[4] if design == "aurora" else budget[2], 6))),
        }

    def cross_check(self, when):
        """The statistics users; after the workloads also users whose rows the workloads
        inserted and deleted again (insert runs, bulk insert), whose figures must be back to
        what was loaded."""
        users = [(f"{n:,} rows", STATS_USER + i) for i, n in enumerate(self.sz.stats_sizes)]
        if when == "after":
            users += [(f"insert workload user, {level:,} rows today", POOL_USER + 100 * i)
                      for i, level in enumerate(self.sz.insert_levels)]
            users += [("bulk insert user", BULK_USER)]
        for label, user in users:
            got = {d: self.answers(d, user) for d in DESIGNS}
            for what in got["aurora"]:
                same = got["aurora"][what] == got["seed"][what] == got["bare"][what]
                self.r.checks.append({"user": label, "what": what, "same": same, "when": when,
                                      "detail": None if same else {d: repr(got[d][what])[:600] for d in DESIGNS}})
                if not same:
                    log(f"MISMATCH ({when}) for {label}, {what}")

    # -- inserts -------------------------------------------------------------------------

    def reset(self, design):
        """Remove what the workloads inserted (aurora's triggers subtract it from the rollups)."""
        with self.cluster.connect(DBNAME[design]) as conn:
            conn.execute("delete from public.generation_logs where created_at >= %s", (self.mark,))
            conn.execute("vacuum public.generation_logs")
            if design == "aurora":
                for (table,) in conn.execute(
                        "select schemaname || '.' || tablename from pg_tables where schemaname = 'aurora_telemetry'").fetchall():
                    conn.execute(f"vacuum {table}")

    def pgbench(self, design, script, clients, ubase, seconds=None, transactions=None, monitor=True):
        sz = self.sz
        cmd = [str(PGBIN / "pgbench"), "-h", self.args.host, "-p", str(self.args.port), "-U", "bench_service",
               "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(clients, 2)),
               "-D", f"ubase={ubase}", "-f", str(PGBENCH_SCRIPTS / script)]
        seconds = sz.insert_seconds if seconds is None else seconds
        transactions = sz.insert_transactions if transactions is None else transactions
        cmd += ["-T", str(seconds)] if seconds else ["-t", str(transactions)]
        cmd.append(DBNAME[design])
        mon = Monitor(self.cluster, DBNAME[design]) if monitor else None
        if mon:
            mon.start()
        result = subprocess.run(cmd, capture_output=True, text=True)
        waits = mon.finish() if mon else {}
        if result.returncode != 0:
            raise RuntimeError(f"pgbench failed ({' '.join(cmd)}):\n{result.stderr[-3000:]}")
        out = result.stdout

        def grab(pattern, cast=float):
            m = re.search(pattern, out)
            return cast(m.group(1)) if m else None

        return {"tps": grab(r"tps = ([\d.]+) \(without initial connection time\)"),
                "latency_ms": grab(r"latency average = ([\d.]+) ms"),
                "transactions": grab(r"number of transactions actually processed: (\d+)", int),
                "failed": grab(r"number of failed transactions: (\d+)", int) or 0,
                **waits}

    def rows_today(self, design, user):
        with self.cluster.connect(DBNAME[design]) as conn:
            return conn.execute(
                "select count(*) from public.generation_logs where user_id = bench.uid(%s) and created_at >= %s",
                (user, self.day_start)).fetchone()[0]

    def one_insert_run(self, design, script_name, clients, ubase):
        self.reset(design)
        run = self.pgbench(design, script_name, clients, ubase)
        run["rows_today_after"] = self.rows_today(design, ubase)
        return run

    def keep_best(self, design, clients, extra, tries):
        """The best of the runs of one configuration: other work on the machine can only slow
        a run down."""
        best = dict(max(tries, key=lambda t: t["tps"]))
        best.update(extra)
        best.update({"design": design, "clients": clients, "all_tps": [t["tps"] for t in tries]})
        self.r.inserts.append(best)
        log(f"{LABEL[design]}: {extra['how']} with {extra['level']:,} rows/user today, {clients} client(s): "
            f"{best['tps']:.0f} tps (runs: {', '.join(f'{t:.0f}' for t in best['all_tps'])}), {best['latency_ms']:.3f} ms")
        return best

    def insert_run(self, design, script_name, clients, ubase, extra):
        tries = [self.one_insert_run(design, script_name, clients, ubase) for _ in range(self.sz.insert_repeats)]
        return self.keep_best(design, clients, extra, tries)

    def measure_inserts(self, design):
        """Each configuration starts from the loaded state. The configurations run in passes
        (all of them, then all again, the second pass in reverse order), so that whatever
        drifts during the phase does not favour the ones that happen to run late."""
        script = "insert_priced.sql" if design == "aurora" else "insert_app_cost.sql"
        configs = [(i, level, script, "INSERT", clients)
                   for i, level in enumerate(self.sz.insert_levels) for clients in self.sz.insert_clients]
        if design == "aurora":
            configs += [(LOG_GENERATION_LEVEL, 0, "log_generation.sql", "log_generation()", clients)
                        for clients in self.sz.insert_clients]
        tries = {c: [] for c in configs}
        for rep in range(self.sz.insert_repeats):
            for config in (configs if rep % 2 == 0 else list(reversed(configs))):
                level_index, level, script_name, how, clients = config
                tries[config].append(self.one_insert_run(design, script_name, clients, POOL_USER + 100 * level_index))
        for config in configs:
            level_index, level, script_name, how, clients = config
            self.keep_best(design, clients, {"level": level, "how": how}, tries[config])
        if design == "aurora":
            self.decompose()
        self.reset(design)

    def decompose(self):
        """Where aurora_telemetry's INSERT time goes: the same 1-client run with alerts off
        (setting alerts_enabled), then also without the rollup trigger (the row trigger alone:
        validation and pricing). Restored afterwards; rows inserted without rollups are
        deleted without the rollup trigger too, so the rollups stay exact."""
        db = DBNAME["aurora"]
        with self.cluster.connect(db) as conn:
            conn.execute("""insert into aurora_telemetry.settings (name, value) values ('alerts_enabled', 'false')
                            on conflict (name) do update set value = excluded.value""")
        try:
            self.insert_run("aurora", "insert_priced.sql", 1, POOL_USER, {"level": 0, "how": "alerts off"})
            self.reset("aurora")  # with the rollup trigger, which subtracts what that run added
            with self.cluster.connect(db) as conn:
                conn.execute("alter table public.generation_logs disable trigger generation_logs_rollup_insert, "
                             "disable trigger generation_logs_rollup_delete")
            try:
                self.insert_run("aurora", "insert_priced.sql", 1, POOL_USER, {"level": 0, "how": "row trigger only"})
                self.reset("aurora")
            finally:
                with self.cluster.connect(db) as conn:
                    conn.execute("alter table public.generation_logs enable trigger generation_logs_rollup_insert, "
                                 "enable trigger generation_logs_rollup_delete")
        finally:
            with self.cluster.connect(db) as conn:
                conn.execute("delete from aurora_telemetry.settings where name = 'alerts_enabled'")

    def measure_bulk(self, design):
        sz = self.sz
        statement = self.insert_sql(design, created_at=False)
        times = []
        with self.cluster.connect(DBNAME[design], user="bench_service") as conn:
            pid = conn.execute("select pg_backend_pid()").fetchone()[0]
            reset = reset_peak(pid)
            sampler = RssSampler(pid)
            sampler.start()
            for rep in range(sz.bulk_reps):
                first = BULK_USER + rep * sz.bulk_users
                t0 = time.perf_counter()
                conn.execute(statement, (first, sz.bulk_users, 0, sz.bulk_rows, sz.bulk_rows, self.anchor, self.anchor,
                                         100 + rep))
                times.append(time.perf_counter() - t0)
            anon = sampler.finish()
            hwm = proc_status(pid).get("VmHWM") if reset else None
        seconds = statistics.median(times)
        self.r.bulk.append({"design": design, "rows": sz.bulk_rows, "users": sz.bulk_users, "reps": sz.bulk_reps,
                            "seconds": seconds, "all_seconds": times, "rows_per_s": sz.bulk_rows / seconds,
                            "peak_rss_kb": hwm, "peak_anon_kb": anon})
        log(f"{LABEL[design]}: one INSERT of {sz.bulk_rows:,} rows: {seconds * 1000:.0f} ms (median of {len(times)})")
        self.reset(design)

    def measure_backfill(self, design):
        """One INSERT of n rows for one user, each in an hour of its own going back from now:
        what a backfill of history or a restore of generation_logs (one COPY) asks."""
        cost = "" if design == "aurora" else ", case i %% 3 when 0 then 0.015 when 1 then 0.04 else 0.06 end"
        statement = (
            "insert into public.generation_logs (user_id, generator, time_ms, prompt_length, created_at"
            + ("" if design == "aurora" else ", cost") + ") "
            "select bench.uid(%s), case i %% 3 when 0 then 'Claude' when 1 then 'Imagen-3' else 'Midjourney' end, "
            "500 + (i * 37) %% 5000, 100, %s::timestamptz - interval '1 hour' * i" + cost
            + " from generate_series(1, %s) as s(i)")
        with self.cluster.connect(DBNAME[design], user="bench_service") as conn:
            for k, n in enumerate(self.sz.backfill_sizes):
                t0 = time.perf_counter()
                conn.execute(statement, (BACKFILL_USER + k, self.anchor, n))
                seconds = time.perf_counter() - t0
                self.r.backfill.append({"design": design, "rows": n, "seconds": seconds})
                log(f"{LABEL[design]}: backfill of {n:,} rows in {n:,} hours: {seconds * 1000:.0f} ms")
        with self.cluster.connect(DBNAME[design]) as conn:
            conn.execute("delete from public.generation_logs where user_id = any(%s::uuid[])",
                         ([f"00000000-0000-4000-8000-{BACKFILL_USER + k:012d}" for k in range(len(self.sz.backfill_sizes))],))

    # -- profile of aurora's hot paths ---------------------------------------------------

    def statement_profile(self, design, action):
        """pg_stat_statements with track = all (nested statements too) around `action`."""
        with self.cluster.connect() as conn:
            conn.execute("alter system set pg_stat_statements.track = 'all'")
            conn.execute("alter system set pg_stat_statements.track_planning = on")
            conn.execute("select pg_reload_conf()")
        try:
            with self.cluster.connect(DBNAME[design]) as conn:
                conn.execute("create extension if not exists pg_stat_statements")
                conn.execute("select pg_stat_statements_reset()")
            units = action()
            with self.cluster.connect(DBNAME[design]) as conn:
                rows = conn.execute(
                    """select toplevel, calls, total_exec_time, total_plan_time, rows, regexp_replace(query, '\\s+', ' ', 'g')
                         from pg_stat_statements
                        where dbid = (select oid from pg_database where datname = current_database())
                          and query not like '%%pg_stat_statements%%'
                        order by total_exec_time desc""").fetchall()
        finally:
            with self.cluster.connect() as conn:
                conn.execute("alter system set pg_stat_statements.track = 'none'")
                conn.execute("alter system reset pg_stat_statements.track_planning")
                conn.execute("select pg_reload_conf()")
        return {"units": units, "statements": [
            {"toplevel": t, "calls": c, "total_ms": ms, "plan_ms": pms, "rows": r, "query": q}
            for t, c, ms, pms, r, q in rows]}

    def profile(self):
        sz = self.sz
        prof = self.r.profile
        # 1. The statements behind one single-row INSERT (level 0, one client).
        self.reset("aurora")
        holder = {}

        def insert_run():
            run = self.pgbench("aurora", "insert_priced.sql", 1, POOL_USER, seconds=sz.profile_seconds if not self.smoke else 0,
                               transactions=50, monitor=False)
            holder["run"] = run
            return run["transactions"]

        prof["insert"] = self.statement_profile("aurora", insert_run)
        prof["insert"]["tps_with_tracking"] = holder["run"]["tps"]
        self.reset("aurora")
        # The same for the seed at 10,000 rows/user today (its trigger's sum).
        top = len(sz.insert_levels) - 1

        def seed_run():
            return self.pgbench("seed", "insert_app_cost.sql", 1, POOL_USER + 100 * top,
                                seconds=sz.profile_seconds if not self.smoke else 0, transactions=20,
                                monitor=False)["transactions"]

        prof["seed_insert"] = self.statement_profile("seed", seed_run)
        prof["seed_insert"]["level"] = sz.insert_levels[top]
        self.reset("seed")

        # 2. The statements behind get_user_usage_stats for the largest user.
        calls = 200 if not self.smoke else 10

        def stats_run():
            with self.cluster.connect(DBNAME["aurora"], user="bench_user") as conn:
                uid = conn.execute("select bench.uid(%s)", (STATS_USER + len(sz.stats_sizes) - 1,)).fetchone()[0]
                conn.execute("select set_config('request.jwt.claims', %s, false)",
                             (json.dumps({"sub": str(uid), "role": "authenticated"}),))
                for _ in range(calls):
                    conn.execute(self.stat_queries()["stats, all time"], (uid,), prepare=True).fetchall()
            return calls

        prof["stats"] = self.statement_profile("aurora", stats_run)

        # What planning costs get_user_usage_stats: its inner query parsed and planned at
        # every call (as the extension's SPI call does) against a kept plan.
        big_user = STATS_USER + len(sz.stats_sizes) - 1
        planning = {}
        for key, script, mode in (("function", "aurora_stats.sql", "prepared"),
                                  ("inner_planned_each_call", "aurora_stats_inner.sql", "simple"),
                                  ("inner_cached_plan", "aurora_stats_inner.sql", "prepared")):
            cmd = [str(PGBIN / "pgbench"), "-h", self.args.host, "-p", str(self.args.port), "-U", "postgres",
                   "-n", "-M", mode, "-c", "1", "-D", f"u={big_user}", "-f", str(PGBENCH_SCRIPTS / script)]
            cmd += ["-T", "3"] if not self.smoke else ["-t", "50"]
            out = subprocess.run(cmd + [DBNAME["aurora"]], capture_output=True, text=True, check=True).stdout
            planning[key] = float(re.search(r"latency average = ([\d.]+) ms", out).group(1))
        prof["stats_planning"] = planning

        # 3. EXPLAIN ANALYZE of the seed's statistics for the largest user, and of the
        #    seed trigger's query at the top insert level.
        with self.cluster.connect(DBNAME["seed"], user="bench_user") as conn:
            uid = conn.execute("select bench.uid(%s)", (STATS_USER + len(sz.stats_sizes) - 1,)).fetchone()[0]
            conn.execute("select set_config('request.jwt.claims', %s, false)",
                         (json.dumps({"sub": str(uid), "role": "authenticated"}),))
            conn.execute("set jit = off")  # keep the plan readable; timings are measured above
            # The SQL function is inlined into the caller, so its plan is the statement's.
            plan = conn.execute(
                "explain (analyze, buffers, costs off, timing off) select * from public.get_user_usage_stats(%s::uuid, null::timestamptz, null::timestamptz)",
                (uid,)).fetchall()
            prof["seed_stats_plan"] = [r[0] for r in plan]
        with self.cluster.connect(DBNAME["seed"]) as conn:
            plan = conn.execute(
                """explain (analyze, buffers, costs off, timing off)
                   select sum(cost) from generation_logs
                    where user_id = bench.uid(%s) and created_at >= current_date""",
                (POOL_USER + 100 * top,)).fetchall()
            prof["seed_trigger_plan"] = [r[0] for r in plan]

        # 4. perf: where one aurora backend spends its CPU during single-row inserts.
        perf = shutil.which("perf")
        if perf and not self.smoke and os.geteuid() == 0:
            prof["perf"] = self.perf_profile(perf, "insert")
            prof["perf_stats"] = self.perf_profile(perf, "stats")

    # Functions whose inclusive share of a statistics call's CPU tells planning from execution.
    STAGES = ("SPI_execute_with_args", "raw_parser", "parse_analyze_fixedparams", "pg_analyze_and_rewrite_fixedparams",
              "pg_plan_queries", "standard_planner", "standard_ExecutorRun", "standard_ExecutorStart")

    def perf_profile(self, perf, what):
        """perf record on the backend of a 1-client pgbench run: single-row INSERTs (`insert`,
        flat profile) or get_user_usage_stats for the largest user (`stats`, inclusive shares
        of the parser, planner and executor)."""
        sz = self.sz
        self.reset("aurora")
        data = Path(self.args.host) / f"perf-{what}.data"
        if what == "insert":
            user, script, var = "bench_service", "insert_priced.sql", f"ubase={POOL_USER}"
        else:
            user, script, var = "postgres", "aurora_stats.sql", f"u={STATS_USER + len(sz.stats_sizes) - 1}"
        cmd = [str(PGBIN / "pgbench"), "-h", self.args.host, "-p", str(self.args.port), "-U", user,
               "-n", "-M", "prepared", "-c", "1", "-T", str(sz.profile_seconds + 3), "-D", var,
               "-f", str(PGBENCH_SCRIPTS / script), DBNAME["aurora"]]
        find = "select pid from pg_stat_activity where application_name = 'pgbench' and backend_type = 'client backend'"
        with self.cluster.connect() as conn:
            earlier = {row[0] for row in conn.execute(find).fetchall()}  # backends of earlier runs still exiting
        bench = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pid = None
            with self.cluster.connect() as conn:
                for _ in range(100):
                    fresh = [row[0] for row in conn.execute(find).fetchall() if row[0] not in earlier]
                    if fresh and os.path.exists(f"/proc/{fresh[0]}"):
                        pid = fresh[0]
                        break
                    time.sleep(0.05)
            if pid is None:
                return {"error": "no pgbench backend found"}
            time.sleep(1)
            rec = subprocess.run([perf, "record", "-e", "cpu-clock", "-F", "2000", "-p", str(pid), "-o", str(data)]
                                 + (["-g"] if what == "stats" else []) + ["--", "sleep", str(sz.profile_seconds)],
                                 capture_output=True, text=True)
            if rec.returncode != 0:
                return {"error": rec.stderr[-500:]}
        finally:
            bench.wait()
        reports = {}
        if what == "insert":
            for key, sort in (("by_dso", "dso"), ("by_symbol", "dso,sym")):
                rep = subprocess.run([perf, "report", "-i", str(data), "--stdio", "--no-children", "--sort", sort,
                                      "--percent-limit", "0.7"], capture_output=True, text=True)
                reports[key] = [line for line in rep.stdout.splitlines() if line.strip() and not line.startswith("#")][:40]
        else:
            rep = subprocess.run([perf, "report", "-i", str(data), "--stdio", "--children", "--sort", "sym", "-g", "none",
                                  "--percent-limit", "1"], capture_output=True, text=True)
            shares = {}
            for line in rep.stdout.splitlines():
                m = re.match(r"\s*([\d.]+)%\s+([\d.]+)%\s+\[.\]\s+(\S+)", line)
                if m and m.group(3) in self.STAGES:
                    shares[m.group(3)] = float(m.group(1))
            reports["inclusive"] = shares
        self.reset("aurora")
        return reports

    # -- the seed exactly as written (no secondary index) ---------------------------------

    def seed_as_written(self):
        sz = self.sz
        out = self.r.as_written
        with self.cluster.connect(DBNAME["seed"]) as conn:
            conn.execute("drop index " + ", ".join(SECONDARY_INDEXES))
        try:
            self.reset("seed")
            run = self.pgbench("seed", "insert_app_cost.sql", 1, POOL_USER, monitor=False)
            out["insert"] = {"tps": run["tps"], "latency_ms": run["latency_ms"], "level": 0, "clients": 1}
            log(f"Seed as written: INSERT, 1 client: {run['tps']:.1f} tps")
            self.reset("seed")
            keep = (sz.min_calls, sz.call_budget_s)
            sz.min_calls, sz.call_budget_s = 3, min(sz.call_budget_s, 2.0)
            try:
                out["stats"] = self.measure_stats("seed", variant="seed_as_written",
                                                  sizes_index={0, len(sz.stats_sizes) - 1},
                                                  kinds={"stats, all time"})
            finally:
                sz.min_calls, sz.call_budget_s = keep
        finally:
            started = time.perf_counter()
            with self.cluster.connect(DBNAME["seed"]) as conn:
                for name, cols in SECONDARY_INDEXES.items():
                    conn.execute(f"create index {name} on public.generation_logs {cols}")
                conn.execute("analyze public.generation_logs")
            out["reindex_seconds"] = time.perf_counter() - started

    # -- the run -------------------------------------------------------------------------

    def phase(self, name, fn, *args):
        try:
            return fn(*args)
        except Exception as error:  # keep going: the report says what failed
            log(f"FAILED: {name}: {error}")
            self.r.errors.append({"phase": name, "error": f"{error}", "trace": traceback.format_exc()[-4000:]})
            return None

    def run(self):
        started = time.time()
        self.r.meta.update(machine_facts())
        self.r.meta.update({"command": self.args.command, "build": self.args.build, "smoke": self.smoke,
                            "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                            "git": git_facts(), "sizes": self.sz.__dict__,
                            "others_busy_at_start": busy_processes(), "loadavg_start": os.getloadavg()})
        log("creating the databases")
        self.create_databases()
        for design in DESIGNS:
            log(f"loading {LABEL[design]}")
            self.load(design)
            self.measure_sizes(design)
        self.phase("cross-check", self.cross_check, "before")
        for design in DESIGNS:
            self.phase(f"statistics ({design})", self.measure_stats, design)
        self.r.meta["day_at_inserts"] = dt.datetime.now(dt.timezone.utc).date().isoformat()
        for design in DESIGNS:
            self.phase(f"inserts ({design})", self.measure_inserts, design)
        for design in DESIGNS:
            self.phase(f"bulk insert ({design})", self.measure_bulk, design)
        for design in DESIGNS:
            self.phase(f"backfill ({design})", self.measure_backfill, design)
        self.phase("profile", self.profile)
        self.phase("seed as written", self.seed_as_written)
        # Every workload removed what it added (aurora_telemetry's triggers subtracting it
        # from the rollups): the answers must still agree.
        self.phase("cross-check after the workloads", self.cross_check, "after")
        self.r.meta["day_after_inserts"] = dt.datetime.now(dt.timezone.utc).date().isoformat()
        self.r.meta["others_busy_at_end"] = busy_processes()
        self.r.meta["loadavg_end"] = os.getloadavg()
        self.r.meta["seconds"] = time.time() - started
        return self.r


class Monitor(threading.Thread):
    """During a pgbench run: what its backends wait on, and their peak memory."""

    def __init__(self, cluster, dbname, interval=0.1):
        super().__init__(daemon=True)
        self.cluster, self.dbname, self.interval = cluster, dbname, interval
        self.stop = threading.Event()
        self.waits, self.samples, self.ungranted = Counter(), 0, 0
        self.hwm, self.anon = {}, {}

    def run(self):
        with self.cluster.connect() as conn:
            while not self.stop.is_set():
                rows = conn.execute(
                    """select a.pid, a.state, coalesce(a.wait_event_type, ''), coalesce(a.wait_event, ''),
                              (select count(*) from pg_locks l where l.pid = a.pid and not l.granted)
                         from pg_stat_activity a
                        where a.datname = %s and a.usename = 'bench_service' and a.backend_type = 'client backend'""",
                    (self.dbname,)).fetchall()
                for pid, state, wtype, wevent, ungranted in rows:
                    status = proc_status(pid)
                    if status:
                        self.hwm[pid] = max(self.hwm.get(pid, 0), status.get("VmHWM", 0))
                        self.anon[pid] = max(self.anon.get(pid, 0), status.get("RssAnon", 0))
                    if state == "active":
                        self.samples += 1
                        self.waits[f"{wtype}:{wevent}" if wtype else "CPU (no wait)"] += 1
                        self.ungranted += 1 if ungranted else 0
                self.stop.wait(self.interval)

    def finish(self):
        self.stop.set()
        self.join()
        return {"active_samples": self.samples, "waits": dict(self.waits), "lock_waiting_samples": self.ungranted,
                "peak_rss_kb": max(self.hwm.values(), default=None), "peak_anon_kb": max(self.anon.values(), default=None)}


def machine_facts():
    meminfo = Path("/proc/meminfo").read_text()
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", meminfo).group(1))
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    virt = subprocess.run(["systemd-detect-virt"], capture_output=True, text=True).stdout.strip() \
        if shutil.which("systemd-detect-virt") else ""
    return {"cores": os.cpu_count(), "memory_gb": mem_kb / 1024 / 1024, "cpu": cpu,
            "kernel": platform.release(), "virtualization": virt or None,
            "pgbench": subprocess.run([str(PGBIN / "pgbench"), "--version"], capture_output=True, text=True).stdout.strip()}


def git_facts():
    def git(*args):
        r = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None
    dirty = git("status", "--porcelain", "--", "src", "sql", "Cargo.toml")
    return {"commit": git("rev-parse", "--short", "HEAD"), "src_dirty": bool(dirty)}


def busy_processes():
    """Builds and test runs of other people sharing this machine (they make figures noisy)."""
    r = subprocess.run(["pgrep", "-fa", r"cargo (pgrx|build|test)|pytest|rustc"], capture_output=True, text=True)
    return [line[:160] for line in r.stdout.splitlines() if "pgrep" not in line]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", required=True, help="socket directory of the benchmark cluster")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True, help="where to write the report (markdown)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the harness end to end")
    parser.add_argument("--build", default="installed", help="release, dev or installed (for the report)")
    parser.add_argument("--command", default="scripts/bench", help="the command line, for the report")
    parser.add_argument("--set", action="append", default=[], metavar="SIZE=VALUE",
                        help="override one size, e.g. --set insert_seconds=5 --set stats_sizes=[1000,10000]")
    args = parser.parse_args()

    sizes = Sizes(**(SMOKE if args.smoke else FULL).__dict__)
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in sizes.__dict__:
            parser.error(f"unknown size {name}; known: {', '.join(sizes.__dict__)}")
        setattr(sizes, name, json.loads(value))
    bench = Bench(args, sizes)
    results = bench.run()
    out = Path(args.out)
    raw = Path(args.host) / "results.json"
    raw.write_text(json.dumps(results.__dict__, indent=1, default=str))
    sys.path.insert(0, str(BENCH))
    from report import render  # noqa: E402
    out.write_text(render(results))
    log(f"wrote {out} (raw figures: {raw})")
    failed = bool(results.errors) or not all(c["same"] for c in results.checks) or not results.checks
    if failed:
        for e in results.errors:
            print(f"phase {e['phase']} failed:\n{e['trace']}", file=sys.stderr)
        for c in results.checks:
            if not c["same"]:
                print(f"designs disagree ({c['when']}) for {c['user']}, {c['what']}: {c['detail']}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
