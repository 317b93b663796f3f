#!/usr/bin/env python3
"""Writes the isolation specs in tests/isolation/specs/ (run it after changing this file).

The specs are generated because they list their permutations explicitly: every interleaving
of each session's steps (its call, then commit or abort), for every choice of commit or
abort, each followed by a check step that prints what must hold afterwards. Where a step
waits for a lock that another session holds, the permutations that would schedule the
waiting session's next step before the wait can end are left out (isolationtester cannot
run them); everything else is kept.

The expected outputs in tests/isolation/expected/ are not generated: they are what a
correct extension prints, checked line by line by tests/isolation/check_expected.py.

    .venv/bin/python tests/isolation/generate_specs.py
"""

import itertools
from dataclasses import dataclass, field
from pathlib import Path

SPECS = Path(__file__).resolve().parent / "specs"

USER_A = "11111111-1111-4111-8111-111111111111"
USER_B = "22222222-2222-4222-8222-222222222222"

SETUP_USERS = f"""
  INSERT INTO auth.users (id, email) VALUES
    ('{USER_A}', 'isolation-a@example.com'),
    ('{USER_B}', 'isolation-b@example.com');
"""

# The check step's function (see the file), in every spec's setup.
CHECK_FUNCTION = "\n" + "".join(
    "  " + line + "\n" for line in (Path(__file__).resolve().parent / "consistency_check.sql").read_text().splitlines()
    if not line.startswith("--"))

TEARDOWN = """
teardown
{
  DELETE FROM auth.users;  -- and by cascade the users' logs (rollups follow), alerts, budgets
  DELETE FROM aurora_telemetry.alert_state;
  DELETE FROM aurora_telemetry.alert_failures;
  DELETE FROM aurora_telemetry.generator_hourly;
  DELETE FROM aurora_telemetry.generator_baselines;
  DELETE FROM aurora_telemetry.user_baselines;
  DELETE FROM aurora_telemetry.settings;
}
"""

INSERT_A = f"INSERT INTO public.generation_logs (user_id, generator, time_ms) VALUES ('{USER_A}', 'Midjourney', 5000);"
LOG_A = f"SELECT public.log_generation('{USER_A}', 'Midjourney', 5000) IS NOT NULL AS logged;"


@dataclass
class Step:
    name: str
    sql: str
    takes: frozenset = frozenset()  # locks held from this step to the end of the transaction
    needs: frozenset = frozenset()  # locks it waits for while another session holds them
    ends: bool = False              # COMMIT or ROLLBACK: releases the session's locks
    releases: bool = False          # ROLLBACK TO SAVEPOINT: releases them too (here)


@dataclass
class Session:
    name: str
    setup: str
    # Each element is one position in the session's sequence; a tuple there lists
    # alternatives (e.g. commit or abort), one of which each permutation takes.
    sequence: list
    steps: dict = field(default_factory=dict)

    def __post_init__(self):
        for position in self.sequence:
            for step in position if isinstance(position, tuple) else (position,):
                self.steps[step.name] = step

    def choices(self):
        return itertools.product(*[p if isinstance(p, tuple) else (p,) for p in self.sequence])


def interleavings(*sequences):
    """Every merge of the sequences that keeps each one's own order."""
    if not any(sequences):
        yield ()
        return
    for i, seq in enumerate(sequences):
        if seq:
            rest = list(sequences)
            rest[i] = seq[1:]
            for tail in interleavings(*rest):
                yield (seq[0],) + tail


def runnable(order, owner):
    """Whether isolationtester can run `order`: no step is issued for a session that is
    still waiting for a lock, and nothing is still waiting at the end."""
    held = {}       # lock -> session holding it
    waiting = {}    # session -> step it waits with

    def execute(session, step):
        for lock in step.takes:
            held[lock] = session
        if step.ends or step.releases:
            for lock in [lock for lock, s in held.items() if s == session]:
                del held[lock]
            # Sessions waiting for what was released go on, in the order they waited.
            for other, pending in list(waiting.items()):
                if not any(held.get(lock) not in (None, other) for lock in pending.needs):
                    del waiting[other]
                    execute(other, pending)

    for step in order:
        session = owner[step.name]
        if session in waiting:
            return False
        if any(held.get(lock) not in (None, session) for lock in step.needs):
            waiting[session] = step
        else:
            execute(session, step)
    return not waiting


def permutations(sessions):
    owner = {step: s.name for s in sessions for step in s.steps}
    lines = []
    for choice in itertools.product(*[s.choices() for s in sessions]):
        for order in interleavings(*choice):
            if runnable(order, owner):
                lines.append("permutation " + " ".join(step.name for step in order) + " check")
    return lines


def comment(text):
    return "".join(f"# {line}".rstrip() + "\n" for line in text.strip().splitlines()) + "\n"


def spec(description, setup, sessions, check="SELECT * FROM public.consistency_check();"):
    out = [comment(description), "setup\n{" + setup + "}\n", "setup\n{" + CHECK_FUNCTION + "}\n", TEARDOWN]
    for s in sessions:
        out.append(f"\nsession {s.name}\nsetup {{ {s.setup} }}\n")
        for step in s.steps.values():
            out.append(f"step {step.name} {{ {step.sql} }}\n")
    out.append(f"\nsession chk\nstep check {{ {check} }}\n\n")
    out.append("\n".join(permutations(sessions)) + "\n")
    return "".join(out)


def writer(n, call, role="service_role", takes=(), needs=(), begin="BEGIN;"):
    """A session acting as the application: BEGIN and one call, then COMMIT or ROLLBACK."""
    return Session(f"s{n}", f"SET ROLE {role};", [
        Step(f"i{n}", f"{begin} {call}", takes=frozenset(takes), needs=frozenset(needs)),
        (Step(f"c{n}", "COMMIT;", needs=frozenset({"rollups"}), ends=True),
         Step(f"a{n}", "ROLLBACK;", ends=True)),
    ])


def budget(limit, levels=None):
    sql = SETUP_USERS + f"  INSERT INTO aurora_telemetry.budgets (user_id, daily_limit) VALUES ('{USER_A}', {limit});\n"
    if levels:
        sql += f"  INSERT INTO aurora_telemetry.settings (name, value) VALUES ('cost_alert_levels', '{levels}');\n"
    return sql


def two_writers():
    return spec("""
Two sessions log a $0.06 Midjourney call each for the same user and day, one by INSERT and
one by log_generation, in every interleaving of insert, commit and abort. The user's daily
budget is $0.10, so the second committed call crosses it. Afterwards the rollups, spend
totals and generator counters equal the raw rows (every drift 0), nothing is left staged,
and there is exactly one cost_alert (fired at $0.12) when both committed, none otherwise.
""", budget("0.10"), [writer(1, INSERT_A), writer(2, LOG_A)])


def three_writers():
    return spec("""
Three sessions log a $0.06 Midjourney call each for the same user and day, in every
interleaving of insert, commit and abort. The daily budget is $0.05 and the alert levels
1, 2 and 3 (thresholds $0.05, $0.10, $0.15), so each committed call crosses exactly one
level: with k commits, levels 1..k fire once each (at $0.06, $0.12, $0.18), whatever the
order, and every drift is 0.
""", budget("0.05", "[1, 2, 3]"), [writer(1, INSERT_A), writer(2, LOG_A), writer(3, INSERT_A)])


def commit_contention():
    # s1 applies its deltas before it commits (SET CONSTRAINTS ALL IMMEDIATE fires the
    # deferred trigger now, and after every later statement), so it holds the user's rollup
    # and spend rows until it ends, and s2's commit has to wait for it.
    s1 = Session("s1", "SET ROLE service_role;", [
        Step("i1", f"BEGIN; {INSERT_A}"),
        Step("f1", "SET CONSTRAINTS ALL IMMEDIATE;", takes=frozenset({"rollups"})),
        Step("j1", INSERT_A, takes=frozenset({"rollups"})),
        (Step("c1", "COMMIT;", ends=True), Step("a1", "ROLLBACK;", ends=True)),
    ])
    return spec("""
Commits that wait for each other. s1 logs a call, applies its deltas at once (SET CONSTRAINTS
ALL IMMEDIATE: the rollup trigger fires now and after each later statement) and logs a
second call, so from then on it holds the user's spend and rollup rows until it ends; s2
logs one call and commits, waiting for s1 where it must. $0.06 a call, daily budget $0.10:
the alert fires once, in whichever transaction commits the crossing, and not at all when
the crossing is rolled back; every drift is 0.
""", budget("0.10"), [s1, writer(2, LOG_A)])


def admin_changes():
    admin = Session("adm", "SET ROLE aurora_telemetry_admin;", [
        (Step("del", f"BEGIN; DELETE FROM public.generation_logs WHERE user_id = '{USER_A}' AND time_ms = 5000;",
              takes=frozenset({"rollups"})),
         Step("upd", f"BEGIN; UPDATE public.generation_logs SET time_ms = time_ms + 1000, success = false WHERE user_id = '{USER_A}';",
              takes=frozenset({"rollups"}))),
        (Step("cadm", "COMMIT;", ends=True), Step("aadm", "ROLLBACK;", ends=True)),
    ])
    setup = SETUP_USERS + f"""  INSERT INTO public.generation_logs (user_id, generator, time_ms, created_at) VALUES
    ('{USER_A}', 'Midjourney', 5000, now()), ('{USER_A}', 'Claude', 1000, now()),
    ('{USER_B}', 'Imagen-3', 3000, now());
"""
    return spec("""
An administrator deletes or updates a user's logs while the application logs more for the
same user and day. The user starts with two committed calls ($0.075) and another user with
one; the administrator deletes the user's $0.06 call or marks all their calls failed, and
commits or rolls back; s1 logs a $0.06 call and commits or rolls back. Rollups and spend
totals equal the raw rows afterwards (the per-generator call counters count calls as made,
so they are not compared here). No cost alert is due (the default daily limit is $10).
""", setup, [admin, writer(1, INSERT_A)], check="SELECT * FROM public.consistency_check(false);")


def savepoints():
    s1 = Session("s1", "SET ROLE service_role;", [
        Step("i1", f"BEGIN; {INSERT_A}"),
        Step("p1", f"SAVEPOINT sp; SET CONSTRAINTS ALL IMMEDIATE; {INSERT_A}", takes=frozenset({"rollups"})),
        Step("r1", "ROLLBACK TO SAVEPOINT sp;", releases=True),
        (Step("c1", "COMMIT;", ends=True), Step("a1", "ROLLBACK;", ends=True)),
    ])
    return spec("""
A subtransaction that applied deltas and claimed an alert is rolled back. s1 logs a call,
then in a savepoint applies its deltas at once (SET CONSTRAINTS ALL IMMEDIATE) and logs a
second call, crossing the $0.10 budget with s2's call or its own two and claiming the
alert; then rolls back to the savepoint (the second call, the applied deltas, the claim and
the immediate mode go) and commits or aborts. s2 logs one call. Only the first call of s1
and s2's call can remain; the first call's deltas are applied at s1's commit all the same;
the alert fires once, at $0.12, when both commit; every drift is 0.
""", budget("0.10"), [s1, writer(2, LOG_A)])


def idempotency():
    key = "idempotency_key => 'order-42'"
    call = f"SELECT public.log_generation('{USER_A}', 'Midjourney', 5000, {key}) IS NOT NULL AS logged;"
    sessions = [
        Session(f"s{n}", "SET ROLE service_role;", [
            Step(f"i{n}", f"BEGIN; {call}", takes=frozenset({"key"}), needs=frozenset({"key"})),
            (Step(f"c{n}", "COMMIT;", ends=True), Step(f"a{n}", "ROLLBACK;", ends=True)),
        ])
        for n in (1, 2)
    ]
    return spec("""
Two sessions log the same call with the same idempotency key at once (a retry racing the
original). The second waits for the first; if the first commits, the second fails with a
serialization error (retried, it returns the first call's id) and the call is logged once;
if the first rolls back, the second logs it. Never two rows, every drift 0, no alert.
""", budget("0.10"), sessions)


def repeatable_read():
    begin = "BEGIN ISOLATION LEVEL REPEATABLE READ;"
    return spec("""
KNOWN FAILURE, not in the schedule (run it with tests/isolation/run rollup-repeatable-read).
rollup-two-writers with both transactions in REPEATABLE READ, as an application (or an ORM
default) may run them. Plain INSERTs into a table never conflict with each other in
REPEATABLE READ, and logging a call must not make them: the expected output is exactly
rollup-two-writers' with the isolation level named in BEGIN. Today the second commit fails
with 40001 (could not serialize access due to concurrent update) wherever the first one
committed after the second's snapshot was taken: the rollup upsert at commit touches a row
version the snapshot does not see. SERIALIZABLE fails the same way.
""", budget("0.10"), [writer(1, INSERT_A, begin=begin), writer(2, LOG_A, begin=begin)])


SPEC_BUILDERS = {
    "rollup-two-writers": two_writers,
    "rollup-three-writers": three_writers,
    "rollup-commit-contention": commit_contention,
    "rollup-admin-changes": admin_changes,
    "rollup-savepoints": savepoints,
    "idempotency-race": idempotency,
    "rollup-repeatable-read": repeatable_read,
}


def main():
    SPECS.mkdir(exist_ok=True)
    for name, build in SPEC_BUILDERS.items():
        text = build()
        (SPECS / f"{name}.spec").write_text(text)
        print(f"{name}: {text.count(chr(10) + 'permutation ')} permutations")


if __name__ == "__main__":
    main()
