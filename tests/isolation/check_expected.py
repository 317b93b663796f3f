#!/usr/bin/env python3
"""Checks that the expected outputs of the isolation specs say what a correct extension does.

pg_isolation_regress only compares a run with tests/isolation/expected/*.out; this script
makes sure those files are right, so that a wrong expected file (accepted from a run of a
broken build, say) cannot make a wrong behaviour pass. For every permutation it derives
from the steps alone what the check step must print (rows logged, which cost alerts fired,
which errors were due) and compares it with the file; every drift and `pending` must be 0.

    .venv/bin/python tests/isolation/check_expected.py [results dir]

Without an argument it checks tests/isolation/expected/; given the results directory of a
run (e.g. $AURORA_RUN_DIR/isolation/results) it checks that run's outputs instead.
"""

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
IDEMPOTENCY_ERROR = "ERROR:  another call with the same idempotency key was logged at the same time"


def fired(*costs):
    return ", ".join(f"level {i} at {c}" for i, c in enumerate(costs, 1))


def two_writers(steps):
    commits = sum(s in ("c1", "c2") for s in steps)
    return commits, (1 if commits == 2 else 0), (fired("0.12") if commits == 2 else ""), 0


def three_writers(steps):
    commits = sum(s in ("c1", "c2", "c3") for s in steps)
    return commits, commits, fired(*["0.06", "0.12", "0.18"][:commits]), 0


def commit_contention(steps):
    # s1 logs two calls, s2 one; the alert is due exactly when s1's two ($0.12) commit.
    logged = (2 if "c1" in steps else 0) + (1 if "c2" in steps else 0)
    return logged, (1 if "c1" in steps else 0), (fired("0.12") if "c1" in steps else ""), 0


def admin_changes(steps):
    # Three rows to start with, one of them user A's 5000 ms call. `del` removes the user's
    # 5000 ms calls it can see: s1's too if s1 committed before the DELETE started.
    logged = 3 + (1 if "c1" in steps else 0)
    if "del" in steps and "cadm" in steps:
        logged -= 1
        if "c1" in steps and steps.index("c1") < steps.index("del"):
            logged -= 1
    return logged, 0, "", 0


def savepoints(steps):
    # s1's second call is rolled back to the savepoint; its first and s2's call remain.
    commits = sum(s in ("c1", "c2") for s in steps)
    return commits, (1 if commits == 2 else 0), (fired("0.12") if commits == 2 else ""), 0


def idempotency_race(steps):
    # The second call waits for the first; it fails if the first commits meanwhile.
    logged = 1 if ("c1" in steps or "c2" in steps) else 0
    errors = 0
    for me, other in (("1", "2"), ("2", "1")):
        i_me, i_other, end_other = steps.index("i" + me), steps.index("i" + other), None
        end_other = next(k for k, s in enumerate(steps) if s in ("c" + other, "a" + other))
        if i_other < i_me < end_other and steps[end_other] == "c" + other:
            errors += 1
    return logged, 0, "", errors


MODELS = {
    "rollup-two-writers": (two_writers, 24),
    "rollup-three-writers": (three_writers, 720),
    "rollup-commit-contention": (commit_contention, 60),
    "rollup-admin-changes": (admin_changes, 48),
    "rollup-savepoints": (savepoints, 60),
    "idempotency-race": (idempotency_race, 16),
    # Not in the schedule: a known failure (see its spec); its expected output is what a
    # correct extension prints, like rollup-two-writers'.
    "rollup-repeatable-read": (two_writers, 24),
}

COLUMNS = ["logged", "rollup_drift", "spend_drift", "hourly_drift", "pending", "cost_alerts",
           "claim_drift", "fired"]


def check_file(path, model, permutations):
    problems = []
    text = path.read_text()
    blocks = text.split("\nstarting permutation: ")[1:]
    if len(blocks) != permutations:
        problems.append(f"{len(blocks)} permutations, expected {permutations}")
    for block in blocks:
        lines = block.splitlines()
        steps = lines[0].split()
        logged, alerts, fired_text, errors = model(steps)
        where = f"permutation {' '.join(steps)}"
        header = lines.index("step check: SELECT * FROM public.consistency_check();") \
            if "step check: SELECT * FROM public.consistency_check();" in lines \
            else lines.index("step check: SELECT * FROM public.consistency_check(false);")
        names = [c.strip() for c in lines[header + 1].split("|")]
        values = [c.strip() for c in lines[header + 3].split("|")]
        if names != COLUMNS or lines[header + 4] != "(1 row)":
            problems.append(f"{where}: unexpected check output {lines[header + 1:header + 5]}")
            continue
        row = dict(zip(names, values))
        want = {"logged": str(logged), "rollup_drift": "0", "spend_drift": "0", "hourly_drift": "0",
                "pending": "0", "cost_alerts": str(alerts), "claim_drift": "0", "fired": fired_text}
        for name in COLUMNS:
            if row[name] != want[name]:
                problems.append(f"{where}: {name} is {row[name]!r}, should be {want[name]!r}")
        # No error, warning or failed setup anywhere but the idempotency errors that are due.
        others = [l for l in lines if re.match(r"(ERROR|WARNING|FATAL|PANIC)|.*(failed|timed out)", l)
                  and l != IDEMPOTENCY_ERROR]
        if others:
            problems.append(f"{where}: unexpected {others}")
        if sum(l == IDEMPOTENCY_ERROR for l in lines) != errors:
            problems.append(f"{where}: {sum(l == IDEMPOTENCY_ERROR for l in lines)} idempotency errors, expected {errors}")
    return problems


def main():
    directory = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE / "expected"
    failed = False
    for name in MODELS:
        model, permutations = MODELS[name]
        path = directory / f"{name}.out"
        if not path.exists() and directory != HERE / "expected":
            continue  # not run
        problems = check_file(path, model, permutations) if path.exists() else [f"{path} is missing"]
        print(f"{name}: {'ok' if not problems else f'{len(problems)} problem(s)'} ({permutations} permutations)")
        for p in problems[:20]:
            print("   ", p)
        failed |= bool(problems)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
