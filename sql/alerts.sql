-- Budgets and the state behind alerts (src/alerts.rs, src/budgets.rs).

-- Per-user budgets. A NULL limit falls back to the daily_cost_threshold /
-- monthly_cost_threshold settings. hard_limit: log_generation refuses calls that cost
-- something once a limit is reached.
CREATE TABLE aurora_telemetry.budgets (
    user_id       uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
    daily_limit   numeric(12, 6) CHECK (daily_limit >= 0),
    monthly_limit numeric(12, 6) CHECK (monthly_limit >= 0),
    hard_limit    boolean NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE aurora_telemetry.budgets IS
    'Per-user daily and monthly cost limits; NULL uses the global threshold settings.';
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.budgets', '');

-- Each user's spend per UTC day and month, one row each, updated at commit with the
-- rollups. Every transaction that adds to a user's day serializes on this row, so the
-- crossing of a threshold is seen by exactly one of them. Rebuilt from the logs on restore.
CREATE TABLE aurora_telemetry.spend_totals (
    user_id      uuid NOT NULL,
    period       text NOT NULL CHECK (period IN ('day', 'month')),
    period_start timestamptz NOT NULL,
    total_cost   numeric NOT NULL,
    generations  bigint NOT NULL,
    PRIMARY KEY (user_id, period, period_start)
);

-- Per generator and UTC hour, across all users, spread over slots chosen by backend so
-- that concurrent writers do not queue on one row; readers sum the slots.
CREATE TABLE aurora_telemetry.generator_hourly (
    generator      text NOT NULL,
    hour_start     timestamptz NOT NULL,
    slot           smallint NOT NULL,
    generations    bigint NOT NULL,
    failed         bigint NOT NULL,
    total_time_ms  bigint NOT NULL,
    latency_sketch bytea NOT NULL,
    PRIMARY KEY (generator, hour_start, slot)
);

-- Latency baselines and usage baselines, computed once per hour on first need.
CREATE TABLE aurora_telemetry.generator_baselines (
    generator       text NOT NULL,
    hour_start      timestamptz NOT NULL,
    generations     bigint NOT NULL,
    average_time_ms double precision,
    p95_time_ms     double precision,
    PRIMARY KEY (generator, hour_start)
);
CREATE TABLE aurora_telemetry.user_baselines (
    user_id      uuid NOT NULL,
    hour_start   timestamptz NOT NULL,
    hours        integer NOT NULL,  -- hours of the user's history in the window
    median_calls double precision NOT NULL,
    mad_calls    double precision NOT NULL,
    median_cost  double precision NOT NULL,
    mad_cost     double precision NOT NULL,
    PRIMARY KEY (user_id, hour_start)
);

-- Which alerts were already sent for which window and level: one row each, so an alert
-- fires once however many transactions race to send it, also after a restore.
CREATE TABLE aurora_telemetry.alert_state (
    kind         text NOT NULL,
    subject      text NOT NULL,
    window_start timestamptz NOT NULL,
    level        numeric NOT NULL,
    alert_id     bigint NOT NULL,
    resolved     boolean NOT NULL DEFAULT false,
    PRIMARY KEY (kind, subject, window_start, level)
);
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.alert_state', '');

-- Alert evaluations that failed. The generation rows of that transaction were logged all
-- the same; the failure is also raised as a WARNING to the client.
CREATE TABLE aurora_telemetry.alert_failures (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    failed_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    error     text NOT NULL
);
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.alert_failures', '');
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.alert_failures_id_seq', '');

-- Alert history as PostgREST serves it: each user sees their own user-scoped alerts.
CREATE VIEW public.usage_alerts WITH (security_invoker = true) AS
    SELECT a.id, a.kind, a.scope, a.user_id, a.generator, a.period, a.window_start, a.level,
           a.figures, a.payload, a.sent_at, a.resolved_at
      FROM aurora_telemetry.alerts a;
COMMENT ON VIEW public.usage_alerts IS
    'Alerts sent by aurora_telemetry; users see their own user-scoped alerts, administrators all.';
