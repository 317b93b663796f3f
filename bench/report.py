#!/usr/bin/env python3
"""Renders the benchmark's figures (results.json, written by bench.py) as BENCHMARKS.md.

    python3 bench/report.py RESULTS.json OUT.md

bench.py calls render() itself; running this file re-renders a report from saved figures.
The hand-written analysis in bench/analysis.md is appended when present (full runs only).
"""

import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
LABEL = {"bare": "Bare", "seed": "Seed", "aurora": "aurora_telemetry", "seed_as_written": "Seed as written"}
DESIGNS = ("bare", "seed", "aurora")
KINDS = ("stats, all time", "stats, current month", "timeseries, by day, 30 days", "check_budget")


def fmt_ms(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def fmt_x(v):
    if v is None:
        return "–"
    if v >= 100:
        return f"{v:,.0f}x"
    if v >= 10:
        return f"{v:.1f}x"
    return f"{v:.2f}x"


def fmt_mb(kb):
    return "–" if kb is None else f"{kb / 1024:.1f}"


def fmt_int(v):
    return "–" if v is None else f"{v:,.0f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def verdict(ok):
    return "–" if ok is None else ("**met**" if ok else "**missed**")


class Figures:
    def __init__(self, r):
        self.r = r
        self.sz = r["meta"]["sizes"]

    def insert(self, design, level, clients, how="INSERT"):
        for run in self.r["inserts"]:
            if run["design"] == design and run["level"] == level and run["clients"] == clients and run["how"] == how:
                return run
        return None

    def tps(self, design, level, clients, how="INSERT"):
        run = self.insert(design, level, clients, how)
        return run["tps"] if run else None

    def stat(self, design, rows, kind):
        for s in self.r["stats"]:
            if s["design"] == design and s["rows"] == rows and s["kind"] == kind:
                return s
        return None

    def p50(self, design, rows, kind):
        s = self.stat(design, rows, kind)
        return s["p50_ms"] if s else None


def targets(f):
    sz = f.sz
    lo, hi = sz["insert_levels"][0], sz["insert_levels"][-1]
    small, big = sz["stats_sizes"][0], sz["stats_sizes"][-1]
    rows = []
    for clients in sz["insert_clients"]:
        ratios = [ratio(f.tps("aurora", level, clients), f.tps("bare", level, clients)) for level in sz["insert_levels"]]
        ratios = [x for x in ratios if x is not None]
        worst = min(ratios) if ratios else None
        rows.append((f"INSERT throughput ≥ 0.8x Bare, {clients} client{'s' if clients > 1 else ''}",
                     f"{fmt_x(worst)} (worst of {len(ratios)} levels; " +
                     ", ".join(fmt_x(x) for x in ratios) + ")", verdict(None if worst is None else worst >= 0.8)))
    for clients in sz["insert_clients"]:
        levels = [f.tps("aurora", level, clients) for level in sz["insert_levels"]]
        base = levels[0]
        dev = max(abs(x / base - 1) for x in levels if x) if base else None
        seed = ratio(f.tps("seed", hi, clients), f.tps("seed", lo, clients))
        rows.append((f"flat (±10%) from {lo:,} to {hi:,} rows/user/day, {clients} client{'s' if clients > 1 else ''}",
                     f"largest deviation from {lo:,}: {dev * 100:.0f}% (Seed: {hi:,} vs {lo:,} = {fmt_x(seed)})"
                     if dev is not None else "–",
                     verdict(None if dev is None else dev <= 0.10)))
    for kind in ("stats, all time", "stats, current month"):
        p = f.p50("aurora", big, kind)
        rows.append((f"get_user_usage_stats ({kind[7:]}), {big:,} rows: p50 < 1 ms", f"{fmt_ms(p)} ms",
                     verdict(None if p is None else p < 1.0)))
        x = ratio(f.p50("seed", big, kind), p)
        rows.append((f"… ≥ 100x faster than Seed ({kind[7:]})", fmt_x(x), verdict(None if x is None else x >= 100)))
        flat = ratio(p, f.p50("aurora", small, kind))
        rows.append((f"… flat from {small:,} to {big:,} rows ({kind[7:]}, p50 ±10%)",
                     f"{fmt_ms(f.p50('aurora', small, kind))} → {fmt_ms(p)} ms ({fmt_x(flat)})",
                     verdict(None if flat is None else flat <= 1.10)))
    return table(["target (issue 7)", "figure", ""], rows)


def machine(r):
    m = r["meta"]
    settings = m.get("settings", {})
    git = m.get("git", {})
    busy = m.get("others_busy_at_start", []) + m.get("others_busy_at_end", [])
    lines = [
        f"- **Command:** `{m['command']}`" + (" (smoke sizes: the figures only show that the harness runs)" if m["smoke"] else ""),
        f"- **Date:** {m['started']} (UTC), {m.get('seconds', 0) / 60:.1f} minutes",
        f"- **Machine:** {m['cores']} cores ({m['cpu']}), {m['memory_gb']:.1f} GB memory, Linux {m['kernel']}"
        + (f", virtualized ({m['virtualization']})" if m.get("virtualization") else ""),
        f"- **PostgreSQL:** {m.get('server_version', '?')}",
        f"- **aurora_telemetry:** {m.get('extension_version', '?')}, commit {git.get('commit')}"
        + (" with uncommitted changes in src/ or sql/" if git.get("src_dirty") else "")
        + f", {m['build']} build" + (" (`cargo pgrx install --release`)" if m["build"] == "release" else ""),
        f"- **Cluster:** private, started by `scripts/cluster` for the benchmark alone; "
        + ", ".join(f"{k} = {v}" for k, v in settings.items())
        + ". `fsync = off`: the figures are the designs' CPU and locking costs, not the disk's.",
        f"- **Clients:** {m['pgbench']} on the same machine (`-M prepared`, `-j` up to 2 threads); "
        "statistics calls from Python (psycopg 3, server-side prepared statements), timed at the client.",
        f"- **Load average:** {m['loadavg_start'][0]:.2f} at the start, {m.get('loadavg_end', [0])[0]:.2f} at the end.",
    ]
    if busy:
        lines.append(f"- **Noise:** other builds or test runs were running on this machine during the run "
                     f"({len(busy)} processes seen, e.g. `{busy[0][:100]}`): figures are noisier than on an idle machine.")
    else:
        lines.append("- **Noise:** no other build or test run was seen on the machine at the start or the end of the run.")
    if m.get("day_at_inserts") and m.get("day_after_inserts") and m["day_at_inserts"] != m["day_after_inserts"]:
        lines.append("- **Note:** the UTC day changed during the insert workloads, so 'rows today' were fewer than stated for some runs.")
    return "\n".join(lines)


def data_section(r, f):
    sz = f.sz
    load = r["load"]
    parts = load["bare"]["parts"]
    desc = ", ".join(f"{name} ({n:,} rows)" for name, n in parts)
    rows = []
    for d in DESIGNS:
        l = load[d]
        rows.append((LABEL[d], fmt_int(l["rows"]), f"{l['seconds']:.1f}", fmt_int(l["rows"] / l["seconds"]),
                     fmt_x(ratio(l["seconds"], load["bare"]["seconds"])), f"{l['vacuum_analyze_seconds']:.1f}"))
    return (f"Every design holds the same rows (a deterministic generator, `bench/sql/common.sql`): {desc}. "
            f"History is spread over the last {sz['history_days']} days (busier 08:00-22:00 UTC; 50% Claude, "
            "30% Imagen-3, 20% Midjourney; 5% failures), the insert workloads' users have their rows "
            "earlier today. Rows are inserted with `INSERT ... SELECT`, one transaction per batch of consecutive rows "
            f"(a stretch of days each: a tenth of a statistics user's history, {sz.get('background_batch', 0):,} "
            "rows of the background users), on as many connections as there are cores. "
            "aurora_telemetry's rows go through all its triggers "
            "(validation, pricing, rollups, alerts at each commit), so its rollups are built by the load itself. "
            "The Seed is loaded with its alert trigger disabled: it keeps no state, only notifies, and summing "
            "the user's day for each of a million rows would take hours.\n\n"
            + table(["design", "rows", "load (s)", "rows/s", "time vs Bare", "VACUUM ANALYZE (s)"], rows))


def insert_section(r, f):
    sz = f.sz
    rows = []
    for level in sz["insert_levels"]:
        for clients in sz["insert_clients"]:
            b, s, a = (f.tps(d, level, clients) for d in DESIGNS)
            end = "/".join(fmt_int((f.insert(d, level, clients) or {}).get("rows_today_after")) for d in DESIGNS)
            rows.append((f"{level:,}", clients, fmt_int(b), fmt_int(s), fmt_int(a), fmt_x(ratio(a, b)),
                         fmt_x(ratio(a, s)), fmt_x(ratio(s, b)), end))
    for clients in sz["insert_clients"]:
        a = f.tps("aurora", 0, clients, "log_generation()")
        if a is not None:
            b, s = f.tps("bare", 0, clients), f.tps("seed", 0, clients)
            end = fmt_int(f.insert("aurora", 0, clients, "log_generation()").get("rows_today_after"))
            rows.append((f"0, via `log_generation()`", clients, fmt_int(b), fmt_int(s), fmt_int(a), fmt_x(ratio(a, b)),
                         fmt_x(ratio(a, s)), fmt_x(ratio(s, b)), f"–/–/{end}"))
    mode = (f"{sz['insert_seconds']} s" if sz["insert_seconds"] else f"{sz['insert_transactions']} transactions per client")
    mode += " per run" if sz["insert_seconds"] else ""
    repeats = sz.get("insert_repeats", 1)
    if repeats > 1:
        mode += f", the best of {repeats} runs of each configuration"
    lat = []
    for d in DESIGNS:
        run = f.insert(d, 0, 1)
        if run:
            lat.append(f"{LABEL[d]} {fmt_ms(run['latency_ms'])} ms")
    text = (f"Transactions per second of single-row INSERTs (`bench/pgbench/`; pgbench, {mode}), one "
            "generation per transaction, as the seed's `POST /api/telemetry/log` stores it. Client *c* always logs "
            "for its own user, who had *rows/user today* rows logged earlier today; each run starts from the loaded "
            "state (rows added by earlier runs are deleted first). Bare and Seed insert the cost the application "
            "computed; aurora_telemetry prices the row itself. The last rows use aurora_telemetry's API function "
            "instead of a plain INSERT.\n\n"
            + table(["rows/user today", "clients", "Bare tps", "Seed tps", "aurora tps", "aurora/Bare", "aurora/Seed",
                     "Seed/Bare", "client 0's rows today at the end (B/S/a)"], rows)
            + f"\n\nMean latency of one INSERT at 1 client, 0 rows today: {', '.join(lat)}. "
            "*rows/user today* is the count at the start of a run; the run's own inserts add to it (last column), "
            "and the Seed's trigger sums all of them at every insert, so even its '0' runs slow down as they go. "
            "Once a user's day passes $10.00 the Seed's trigger also sends a `cost_alert` notification at every "
            "insert; aurora_telemetry sends one per day and level.")
    return text


def decomposition_section(r, f):
    steps = [("Bare (no triggers)", f.insert("bare", 0, 1)),
             ("aurora_telemetry, row trigger only (validate, redact, price)", f.insert("aurora", 0, 1, "row trigger only")),
             ("… + rollups (alerts_enabled = false)", f.insert("aurora", 0, 1, "alerts off")),
             ("… + alerts: aurora_telemetry as installed", f.insert("aurora", 0, 1))]
    if any(run is None for _, run in steps):
        return "Not measured."
    rows, previous = [], None
    for name, run in steps:
        ms = 1000.0 / run["tps"]
        rows.append((name, fmt_int(run["tps"]), fmt_ms(ms), "–" if previous is None else f"+{fmt_ms(ms - previous)}"))
        previous = ms
    return ("The 1-client, 0 rows/user today INSERT run again with parts of aurora_telemetry switched off "
            "(in the benchmark database only, restored afterwards): first alerts (the `alerts_enabled` setting), then "
            "also the rollup triggers, leaving the row trigger that validates, redacts and prices each row. "
            "*ms per INSERT* is 1 / tps, client round trip included.\n\n"
            + table(["what runs", "tps", "ms per INSERT", "added by this step (ms)"], rows))


def concurrency_section(r, f):
    sz = f.sz
    if 8 not in sz["insert_clients"] or 1 not in sz["insert_clients"]:
        return "Not measured."
    rows = []
    for d in DESIGNS:
        one, eight = f.insert(d, 0, 1), f.insert(d, 0, 8)
        if not one or not eight:
            continue
        samples = eight.get("active_samples") or 0
        waits = sorted((eight.get("waits") or {}).items(), key=lambda kv: -kv[1])
        top = ", ".join(f"{k} {v / samples * 100:.0f}%" for k, v in waits[:4]) if samples else "–"
        lock = f"{eight.get('lock_waiting_samples', 0) / samples * 100:.1f}%" if samples else "–"
        rows.append((LABEL[d], fmt_int(one["tps"]), fmt_int(eight["tps"]), fmt_x(ratio(eight["tps"], one["tps"])),
                     fmt_x(ratio(eight["tps"], f.tps("bare", 0, 8))), lock, top))
    return ("Eight writers, each logging for a different user, against one (0 rows/user today). With "
            f"{r['meta']['cores']} cores, 8 clients can at best reach about {r['meta']['cores']}x one client's rate, "
            "and pgbench shares the cores. A design that funnelled every commit through a global per-generator "
            "counter row would show it here as `Lock:transactionid`/`Lock:tuple` waits and 8 clients no faster "
            "than 1. The wait events are sampled every 100 ms from `pg_stat_activity` for the backends of the run "
            "that were active; *waiting on a lock* counts samples with an ungranted lock in `pg_locks`.\n\n"
            + table(["design", "1 client tps", "8 clients tps", "8 vs 1", "8 clients vs Bare", "waiting on a lock",
                     "what active backends were doing (share of samples)"], rows))


def bulk_section(r, f):
    rows = []
    base = next((b for b in r["bulk"] if b["design"] == "bare"), None)
    for b in r["bulk"]:
        rows.append((LABEL[b["design"]], fmt_ms(b["seconds"] * 1000), fmt_int(b["rows_per_s"]),
                     fmt_x(ratio(b["seconds"], base["seconds"])) if base else "–",
                     fmt_mb(b["peak_rss_kb"]), fmt_mb(b["peak_anon_kb"])))
    if not r["bulk"]:
        return "Not measured."
    b0 = r["bulk"][0]
    return (f"One `INSERT ... SELECT` of {b0['rows']:,} rows for {b0['users']} users ({b0['rows'] // b0['users']:,} "
            f"each, `created_at = now()`), committed; median of {b0['reps']} (each on new users).\n\n"
            + table(["design", "ms", "rows/s", "time vs Bare", "peak RSS (MB)", "peak private (MB)"], rows))


def backfill_section(r, f):
    if not r.get("backfill"):
        return "Not measured."
    sizes = sorted({b["rows"] for b in r["backfill"]})
    get = {(b["design"], b["rows"]): b["seconds"] for b in r["backfill"]}
    rows = []
    for n in sizes:
        cells = []
        for d in DESIGNS:
            sec = get.get((d, n))
            cells.append("–" if sec is None else f"{sec * 1000:,.0f} ({sec * 1e6 / n:,.0f})")
        rows.append((f"{n:,}", *cells, fmt_x(ratio(get.get(("aurora", n)), get.get(("bare", n))))))
    first, last = sizes[0], sizes[-1]
    growth = ratio(get.get(("aurora", last)), get.get(("aurora", first)))
    return ("One `INSERT ... SELECT` of *n* rows for one user, each row in an hour of its own going back from now, "
            "committed: what a backfill of history, or restoring `generation_logs` with `pg_restore` (one COPY per "
            "table), asks of the rollups. Milliseconds, and in brackets microseconds per row.\n\n"
            + table(["rows (= distinct hours)", "Bare ms (µs/row)", "Seed ms (µs/row)", "aurora ms (µs/row)", "aurora vs Bare"], rows)
            + (f"\n\n{last // first}x the rows took aurora_telemetry {fmt_x(growth)} the time"
               + (": the cost per row grows with the number of distinct keys in the transaction." if growth and growth > 1.3 * last / first else ".")
               if growth else ""))


def stats_section(r, f):
    sz = f.sz
    out = []
    floor = [s["floor_ms"] for s in r["stats"] if s["design"] == "aurora"]
    for kind in KINDS:
        rows = []
        for n in sz["stats_sizes"]:
            cells = []
            for d in DESIGNS:
                s = f.stat(d, n, kind)
                cells.append(f"{fmt_ms(s['p50_ms'])} / {fmt_ms(s['p99_ms'])}" if s else "–")
            a = f.p50("aurora", n, kind)
            calls = [f.stat(d, n, kind)["calls"] for d in DESIGNS if f.stat(d, n, kind)]
            rows.append((f"{n:,}", *cells, fmt_x(ratio(f.p50("seed", n, kind), a)),
                         fmt_x(ratio(f.p50("bare", n, kind), a)), "/".join(map(str, calls))))
        out.append(f"**{kind}**\n\n" + table(
            ["user's rows", "Bare p50 / p99 (ms)", "Seed p50 / p99 (ms)", "aurora p50 / p99 (ms)", "Seed ÷ aurora",
             "Bare ÷ aurora", "calls (B/S/a)"], rows))
    intro = ("Latency of one call, as an authenticated user asking for their own figures (role `authenticated`, "
             "JWT claims set as PostgREST sets them; the Seed's row-level security applies). Bare and Seed answer "
             "with plain SQL over the user's rows (`bench/sql/plain_api.sql`: one aggregate pass, index range on "
             "`created_at`; exact percentiles for the time series; for `check_budget` the day's and month's spend); "
             "aurora_telemetry with its own functions. Each figure is over as many calls as fit in "
             f"{sz['call_budget_s']:g} s (at least {sz['min_calls']}, at most {sz['max_calls']:,}), after warm-up. "
             "*Current month* is `since => date_trunc('month', now())`; the time series is by day over the last 30 days."
             + (f" A client round trip (`SELECT 1`) takes {fmt_ms(min(floor))} ms and is included in every figure." if floor else ""))
    return intro + "\n\n" + "\n\n".join(out)


def memory_section(r, f):
    sz = f.sz
    rows = []
    big = sz["stats_sizes"][-1]
    for kind in KINDS:
        for n in (sz["stats_sizes"][0], big):
            cells = []
            for d in DESIGNS:
                s = f.stat(d, n, kind)
                cells.append(f"{fmt_mb(s['peak_rss_kb'])} / {fmt_mb(s['peak_anon_kb'])}" if s else "–")
            rows.append((f"{kind}, {n:,} rows", *cells))
    for clients in sz["insert_clients"]:
        cells = []
        for d in DESIGNS:
            run = f.insert(d, sz["insert_levels"][-1], clients)
            cells.append(f"{fmt_mb(run.get('peak_rss_kb'))} / {fmt_mb(run.get('peak_anon_kb'))}" if run else "–")
        rows.append((f"INSERTs, {sz['insert_levels'][-1]:,} rows/user today, {clients} client(s) (busiest backend)", *cells))
    for b in r["bulk"]:
        pass
    cells = []
    for d in DESIGNS:
        b = next((x for x in r["bulk"] if x["design"] == d), None)
        cells.append(f"{fmt_mb(b['peak_rss_kb'])} / {fmt_mb(b['peak_anon_kb'])}" if b else "–")
    rows.append(("bulk INSERT", *cells))
    return ("Peak memory of the backend doing the work, in MB, as *peak RSS / peak private*: peak RSS is "
            "`VmHWM` from `/proc/<pid>/status` (reset with `clear_refs` before each measurement); it counts the "
            "shared buffers the backend touched, so a scan of a large table shows up in it. Peak private is the "
            "largest `RssAnon` (the backend's own memory: sorts, hash tables, caches) sampled every millisecond "
            "over a few calls; for pgbench runs both are sampled every 100 ms.\n\n"
            + table(["workload", "Bare", "Seed", "aurora_telemetry"], rows))


def size_section(r, f):
    rows = []
    base = r["sizes"]["bare"]
    base_total = base["heap"] + base["indexes"] + base["derived"]
    for d in DESIGNS:
        s = r["sizes"][d]
        total = s["heap"] + s["indexes"] + s["derived"]
        per = 1e6 / s["rows"] if s["rows"] else 0
        rows.append((LABEL[d], fmt_int(s["rows"]), f"{s['heap'] / 2**20:.1f}", f"{s['indexes'] / 2**20:.1f}",
                     f"{s['derived'] / 2**20:.1f}", f"{total / 2**20:.1f}", f"{total * per / 2**20:.1f}",
                     fmt_x(ratio(total, base_total))))
    a = r["sizes"]["aurora"]
    parts = ", ".join(f"`{name}` {size / 2**20:.1f} MB" for name, size in a["derived_tables"] if size >= 64 * 1024)
    return ("After the load and `VACUUM ANALYZE`, before the workloads. *Table* includes TOAST; *derived* is "
            "everything in schema `aurora_telemetry` (rollups, spend totals, generator counters, catalogs, "
            "alert state).\n\n"
            + table(["design", "rows", "table (MB)", "indexes (MB)", "derived (MB)", "total (MB)", "MB per 1M rows",
                     "vs Bare"], rows)
            + f"\n\naurora_telemetry's derived tables: {parts or 'all small'}; {a['rollup_rows']:,} rollup rows "
            f"({a['rollup_rows'] / a['rows']:.3f} per logged row).")


def as_written_section(r, f):
    w = r.get("as_written") or {}
    if not w:
        return "Not measured."
    rows = []
    ins = w.get("insert")
    if ins:
        seed = f.tps("seed", 0, 1)
        rows.append(("INSERT, 1 client, 0 rows/user today (tps)", fmt_int(seed), fmt_int(ins["tps"]),
                     fmt_x(ratio(ins["tps"], seed))))
    for s in w.get("stats") or []:
        seed = f.p50("seed", s["rows"], s["kind"])
        rows.append((f"{s['kind']}, {s['rows']:,} rows, p50 (ms)", fmt_ms(seed), fmt_ms(s["p50_ms"]),
                     fmt_x(ratio(s["p50_ms"], seed))))
    return ("The Seed above has the same secondary indexes as Bare and aurora_telemetry, so that the comparison "
            "is between designs rather than about a missing index. The seed document's table as written has only "
            "its primary key: its trigger and its statistics then scan the whole table. Measured once with the "
            f"indexes dropped (rebuilding them took {w.get('reindex_seconds', 0):.1f} s):\n\n"
            + table(["workload", "Seed (indexed)", "Seed as written", "as written vs indexed"], rows))


def checks_section(r):
    checks = r["checks"]
    if not checks:
        return "The cross-check did not run."
    bad = [c for c in checks if not c["same"]]
    kinds = sorted({c["what"] for c in checks})
    if not bad:
        return (f"Before timing anything, the harness asks all three designs the same questions for every statistics "
                f"user ({', '.join(kinds)}; counts, costs and averages, per generator and bucket) and compares the "
                "answers; after the workloads, which delete what they inserted (aurora_telemetry subtracts it from its "
                "rollups), it asks again, also for the users the insert workloads and the bulk insert wrote for. "
                f"All {len(checks)} comparisons are identical: the designs are timed doing the same work, and "
                "aurora_telemetry's rollups stayed exact through every workload.")
    return (f"**{len(bad)} of {len(checks)} comparisons differ** between the designs:\n\n"
            + "\n".join(f"- {c.get('when', '')}: {c.get('user', c.get('rows'))}, {c['what']}: `{c['detail']}`" for c in bad))


def statement_table(prof, per_unit, client_marker, limit=14):
    """pg_stat_statements rows; 'run from' tells the client's own statement, statements nested in
    it (triggers, functions) and top-level statements the client did not send (deferred
    triggers at commit count as top level in pg_stat_statements)."""
    units = prof.get("units") or 1
    rows = []
    for s in prof["statements"][:limit]:
        q = s["query"]
        origin = "client" if client_marker in q and s["toplevel"] else ("nested" if not s["toplevel"] else "commit")
        q = q if len(q) <= 110 else q[:107] + "..."
        rows.append((f"{s['calls'] / units:.1f}", f"{s['total_ms'] / units:.3f}",
                     f"{(s.get('plan_ms') or 0) / units:.3f}", origin,
                     "`" + q.replace("|", "\\|").replace("`", "'") + "`"))
    return table([f"calls per {per_unit}", f"exec ms per {per_unit}", f"plan ms per {per_unit}", "run from",
                  "statement"], rows)


def profile_section(r, f):
    p = r.get("profile") or {}
    out = []
    ins = p.get("insert")
    if ins:
        units = ins["units"] or 1
        n = sum(s["calls"] for s in ins["statements"] if not s["toplevel"] or "generation_logs" not in s["query"]) / units
        out.append(
            "**What one single-row INSERT costs in aurora_telemetry.** `pg_stat_statements` with `track = all` "
            "(nested statements too: SPI calls from the triggers and the commit-time flush; `track_planning` on) "
            f"over {units:,} single-row INSERTs at 1 client. Most of the time goes to executing these "
            f"statements: about {n:.0f} SQL statements run per logged row. Top statements by total "
            "execution time (*run from*: `client` is the INSERT pgbench sent, `nested` ran inside it (triggers), "
            "`commit` ran at commit from the deferred trigger):\n\n" + statement_table(ins, "INSERT", "INSERT INTO public.generation_logs")
            + (f"\n\n(with tracking on, the run reached {fmt_int(ins.get('tps_with_tracking'))} tps.)" if ins.get("tps_with_tracking") else ""))
        plans = [s for s in ins["statements"] if s.get("plan_ms")]
        if plans:
            tot = sum(s["plan_ms"] for s in ins["statements"]) / units
            out.append(f"Planning the statements above cost {tot:.3f} ms per INSERT in total "
                       "(the extension plans each of its statements once per backend and keeps the plan; a figure "
                       "well above zero here means some statement is planned again at every execution).")
    si = p.get("seed_insert")
    if si:
        out.append(f"**The Seed's INSERT at {si.get('level', 0):,} rows/user today**, the same way:\n\n"
                   + statement_table(si, "INSERT", "INSERT INTO public.generation_logs", limit=5))
    st = p.get("stats")
    if st:
        out.append(f"**What one `get_user_usage_stats` call costs in aurora_telemetry** for the "
                   f"{f.sz['stats_sizes'][-1]:,}-row user:\n\n" + statement_table(st, "call", "public.get_user_usage_stats", limit=6))
    sp = p.get("stats_planning")
    if sp:
        out.append("**How much of `get_user_usage_stats` is planning.** Its inner query (copied from `src/stats.rs` "
                   "into `bench/pgbench/aurora_stats_inner.sql`, all-time range) run by pgbench for the same user: "
                   "parsed and planned at every call (`-M simple`), and with a kept plan (`-M prepared`), as the "
                   "extension runs it; mean latency, client round trip included:\n\n"
                   + table(["what", "ms per call"], [
                       ("`get_user_usage_stats(user, null, null)` as installed", fmt_ms(sp["function"])),
                       ("its inner query, parsed and planned every call", fmt_ms(sp["inner_planned_each_call"])),
                       ("its inner query with a kept plan", fmt_ms(sp["inner_cached_plan"]))]))
    if p.get("seed_trigger_plan"):
        out.append("**The Seed trigger's query** for a user with "
                   f"{f.sz['insert_levels'][-1]:,} rows today (`EXPLAIN ANALYZE`):\n\n```\n"
                   + "\n".join(p["seed_trigger_plan"]) + "\n```")
    if p.get("seed_stats_plan"):
        out.append(f"**The Seed's `get_user_usage_stats`** for the {f.sz['stats_sizes'][-1]:,}-row user "
                   "(`EXPLAIN (ANALYZE, BUFFERS)`, JIT off for readability; the SQL function is inlined):\n\n```\n"
                   + "\n".join(p["seed_stats_plan"]) + "\n```")
    perf = p.get("perf")
    if perf and not perf.get("error"):
        out.append("**perf** (`perf record -e cpu-clock` on the backend of a 1-client aurora_telemetry INSERT run; "
                   "hardware counters are not available in this VM"
                   + (f"; {perf['note']}" if perf.get("note") else "") + "). By shared object:\n\n```\n"
                   + "\n".join(perf.get("by_dso", [])[:12]) + "\n```\n\nBy symbol (≥ 0.7%):\n\n```\n"
                   + "\n".join(perf.get("by_symbol", [])[:30]) + "\n```")
    elif perf:
        out.append(f"perf did not run: {perf.get('error')}")
    ps = (p.get("perf_stats") or {}).get("inclusive")
    if ps:
        names = [("SPI_execute_with_args", "all SQL the function runs through SPI"),
                 ("raw_parser", "… parsing"), ("parse_analyze_fixedparams", "… parse analysis"),
                 ("standard_planner", "… planning"), ("standard_ExecutorStart", "… executor start-up"),
                 ("standard_ExecutorRun", "… execution")]
        out.append("**perf on `get_user_usage_stats`** for the "
                   f"{f.sz['stats_sizes'][-1]:,}-row user (pgbench, 1 client, `perf record -g`): share of the backend's "
                   "CPU time spent inside each stage, callees included:\n\n"
                   + table(["stage", "share of CPU"], [(f"{label} (`{name}`)", f"{ps[name]:.0f}%")
                                                     for name, label in names if name in ps]))
    return "\n\n".join(out) if out else "Not measured."


def render(results):
    r = results if isinstance(results, dict) else results.__dict__
    f = Figures(r)
    smoke = r["meta"].get("smoke")
    parts = [
        "# Benchmarks" + (" (smoke run)" if smoke else ""),
        "aurora_telemetry side by side with the seed's plain SQL design and a bare table (issue 7), in one "
        "cluster on one machine. **Bare**: `generation_logs` with the same columns and indexes and nothing else "
        "(no triggers, foreign keys or policies): the physical limit. **Seed**: the seed document's table, "
        "row-level security policies and `check_daily_cost_alert` trigger exactly as written (plus the same "
        "indexes, see *Seed as written*), with plain SQL statistics. **aurora_telemetry**: `CREATE EXTENSION` "
        "with its defaults, every trigger and alert on. Generated by `scripts/bench` (harness in `bench/`); do "
        "not edit by hand, run it again.",
        "## Targets\n\n" + targets(f),
        "## Machine and run\n\n" + machine(r),
    ]
    if r.get("errors"):
        parts.append("## Failed phases\n\n" + "\n".join(f"- {e['phase']}: `{e['error'][:300]}`" for e in r["errors"]))
    parts += [
        "## Data and load\n\n" + data_section(r, f),
        "## Insert throughput\n\n" + insert_section(r, f),
        "## Where aurora_telemetry's INSERT time goes\n\n" + decomposition_section(r, f),
        "## Eight concurrent writers\n\n" + concurrency_section(r, f),
        "## Bulk insert\n\n" + bulk_section(r, f),
        "## Backfill\n\n" + backfill_section(r, f),
        "## Statistics latency\n\n" + stats_section(r, f),
        "## Peak backend memory\n\n" + memory_section(r, f),
        "## Size on disk\n\n" + size_section(r, f),
        "## Seed as written\n\n" + as_written_section(r, f),
        "## Same answers\n\n" + checks_section(r),
        "## Profile\n\n" + profile_section(r, f),
    ]
    analysis = BENCH / "analysis.md"
    if analysis.exists() and not smoke:
        parts.append(analysis.read_text().strip())
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: report.py RESULTS.json OUT.md")
    Path(sys.argv[2]).write_text(render(json.loads(Path(sys.argv[1]).read_text())))
