-- Tables. Internals live in the private schema aurora_telemetry (not exposed by PostgREST);
-- only what users read or call is in public.

-- Which AI services may be logged. Adding one is an INSERT, never an ALTER TABLE.
CREATE TABLE aurora_telemetry.generators (
    name        text PRIMARY KEY
                CONSTRAINT generators_name_format
                CHECK (name ~ '^[^[:space:][:cntrl:]]([^[:cntrl:]]{0,62}[^[:space:][:cntrl:]])?$'),
    description text,
    builtin     boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE aurora_telemetry.generators IS
    'AI services that generation_logs.generator may name. Shipped rows have builtin = true.';

INSERT INTO aurora_telemetry.generators (name, description, builtin) VALUES
    ('Claude',     'Anthropic Claude text generation',  true),
    ('Imagen-3',   'Google Imagen 3 image generation',  true),
    ('Midjourney', 'Midjourney image generation',       true);

-- Shipped rows come back with CREATE EXTENSION; only administrators' rows are dumped.
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.generators', 'WHERE NOT builtin');

-- The seed's table, column for column. The generator list is a catalog reference instead of
-- a CHECK so that new services need no table change; NOT NULL on success, prompt_length and
-- created_at keeps every row countable (the seed's defaults still apply when omitted).
CREATE TABLE public.generation_logs (
    id            uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
    user_id       uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    generator     text NOT NULL REFERENCES aurora_telemetry.generators (name),
    time_ms       integer NOT NULL
                  CONSTRAINT generation_logs_time_ms_nonnegative CHECK (time_ms >= 0),
    cost          numeric(10, 6)
                  CONSTRAINT generation_logs_cost_nonnegative CHECK (cost >= 0 AND cost <> 'NaN'::numeric),
    prompt_length integer NOT NULL DEFAULT 0
                  CONSTRAINT generation_logs_prompt_length_nonnegative CHECK (prompt_length >= 0),
    success       boolean NOT NULL DEFAULT true,
    error_message text,
    metadata      jsonb,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE public.generation_logs IS
    'One row per AI generation call (aurora_telemetry). Users read their own rows; service_role inserts.';

-- The seed's queries filter by user and order or range by time.
CREATE INDEX generation_logs_user_created_idx
    ON public.generation_logs (user_id, created_at DESC);
-- Range scans across users (repricing, billing) and the generator foreign key.
CREATE INDEX generation_logs_created_idx ON public.generation_logs (created_at);
CREATE INDEX generation_logs_generator_created_idx ON public.generation_logs (generator, created_at);

SELECT pg_catalog.pg_extension_config_dump('public.generation_logs', '');

-- Prices. A price change is a new row with a later effective_from; rows logged before it
-- keep the price of their time. Token rates are per million tokens, as vendors quote them.
-- NULL rate = that quantity is not billed for this generator.
CREATE TABLE aurora_telemetry.prices (
    generator                  text NOT NULL REFERENCES aurora_telemetry.generators (name),
    effective_from             timestamptz NOT NULL,
    per_generation             numeric(12, 6) NOT NULL DEFAULT 0,
    per_second                 numeric(12, 6),
    per_million_input_tokens   numeric(12, 6),
    per_million_output_tokens  numeric(12, 6),
    per_million_cache_read_tokens  numeric(12, 6),
    per_million_cache_write_tokens numeric(12, 6),
    per_image                  numeric(12, 6),
    bill_failures              boolean NOT NULL DEFAULT false,
    builtin                    boolean NOT NULL DEFAULT false,
    note                       text,
    PRIMARY KEY (generator, effective_from),
    CONSTRAINT prices_rates_nonnegative CHECK (
        per_generation >= 0
        AND COALESCE(per_second, 0) >= 0
        AND COALESCE(per_million_input_tokens, 0) >= 0
        AND COALESCE(per_million_output_tokens, 0) >= 0
        AND COALESCE(per_million_cache_read_tokens, 0) >= 0
        AND COALESCE(per_million_cache_write_tokens, 0) >= 0
        AND COALESCE(per_image, 0) >= 0
    )
);
COMMENT ON TABLE aurora_telemetry.prices IS
    'Price catalog: one row per generator and effective_from; the latest row not after a call''s created_at prices it.';

-- The seed's estimates (Claude Sonnet 4.5 $0.015, Imagen-3 $0.04, Midjourney $0.06 per call),
-- in force since the beginning of time.
INSERT INTO aurora_telemetry.prices (generator, effective_from, per_generation, builtin, note) VALUES
    ('Claude',     '-infinity', 0.015, true, 'seed estimate per generation'),
    ('Imagen-3',   '-infinity', 0.04,  true, 'seed estimate per generation'),
    ('Midjourney', '-infinity', 0.06,  true, 'seed estimate per generation');
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.prices', 'WHERE NOT builtin');

-- Administrator overrides of settings; a missing row means the default documented in
-- src/settings.rs. Kept in a table (not GUCs) so that pg_dump carries them.
CREATE TABLE aurora_telemetry.settings (
    name       text PRIMARY KEY,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE aurora_telemetry.settings IS
    'Administrator overrides of aurora_telemetry settings (see the README for names and defaults).';
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.settings', '');

-- log_generation's idempotency keys: a retried call returns the first call's log id.
CREATE TABLE aurora_telemetry.idempotency_keys (
    user_id         uuid NOT NULL REFERENCES auth.users (id) ON DELETE CASCADE,
    idempotency_key text NOT NULL CHECK (pg_catalog.length(idempotency_key) BETWEEN 1 AND 255),
    log_id          uuid NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (user_id, idempotency_key)
);
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.idempotency_keys', '');

-- Usage rollups: per user, generator and UTC hour, day and month, maintained in the same
-- transaction as every insert, update and delete on generation_logs. Not dumped: restoring
-- generation_logs replays its rows through the same triggers and rebuilds them exactly.
CREATE TABLE aurora_telemetry.usage_rollups (
    user_id        uuid NOT NULL,
    level          text NOT NULL CHECK (level IN ('hour', 'day', 'month')),
    bucket_start   timestamptz NOT NULL,
    generator      text NOT NULL,
    generations    bigint NOT NULL CHECK (generations >= 0),
    successful     bigint NOT NULL CHECK (successful BETWEEN 0 AND generations),
    total_cost     numeric NOT NULL,
    total_time_ms  bigint NOT NULL,
    latency_sketch bytea NOT NULL,
    PRIMARY KEY (user_id, level, bucket_start, generator)
);
COMMENT ON TABLE aurora_telemetry.usage_rollups IS
    'Per-user usage totals and latency sketches by UTC hour, day and month. Internal; read through get_user_usage_stats and get_user_usage_timeseries.';

-- Rollup deltas of the current transaction, applied to usage_rollups just before it commits
-- (by a deferred trigger) in one statement sorted by key. So a transaction holds rollup row
-- locks only for the moment of its commit, and always takes them in the same order as every
-- other transaction: concurrent writers cannot deadlock, however many statements and users
-- each transaction has. Another transaction's rows here are never visible: they are deleted
-- by the transaction that staged them, before it commits, except where a transaction at
-- REPEATABLE READ or SERIALIZABLE could not apply them (src/rollups.rs): such rows stay here,
-- count in every statistic, and are applied by the next flush that can.
CREATE TABLE aurora_telemetry.pending_usage_deltas (
    user_id        uuid NOT NULL,
    level          text NOT NULL,
    bucket_start   timestamptz NOT NULL,
    generator      text NOT NULL,
    generations    bigint NOT NULL,
    successful     bigint NOT NULL,
    total_cost     numeric NOT NULL,
    total_time_ms  bigint NOT NULL,
    latency_sketch bytea NOT NULL,
    new_calls      boolean NOT NULL DEFAULT true   -- false: rows re-added by an UPDATE
);
-- The statistics and check_budget read a user's staged rows (a transaction's own, and those
-- left by REPEATABLE READ or SERIALIZABLE transactions) by user, never the whole table.
CREATE INDEX pending_usage_deltas_user_idx ON aurora_telemetry.pending_usage_deltas (user_id);

-- What the statistics read: the committed rollups plus this transaction's own pending
-- deltas, so a transaction sees its own inserts.
CREATE VIEW aurora_telemetry.usage_rollups_current WITH (security_invoker = true) AS
    SELECT user_id, level, bucket_start, generator, generations, successful, total_cost,
           total_time_ms, latency_sketch
      FROM aurora_telemetry.usage_rollups
    UNION ALL
    SELECT user_id, level, bucket_start, generator, generations, successful, total_cost,
           total_time_ms, latency_sketch
      FROM aurora_telemetry.pending_usage_deltas;

-- Every alert sent (cost_alert, error_rate_alert, latency_alert, usage_anomaly) is also a
-- row here, so a listener that missed a notification can catch up.
CREATE TABLE aurora_telemetry.alerts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text NOT NULL
                 CHECK (kind IN ('cost_alert', 'error_rate_alert', 'latency_alert', 'usage_anomaly')),
    scope        text NOT NULL CHECK (scope IN ('user', 'generator')),
    user_id      uuid REFERENCES auth.users (id) ON DELETE CASCADE,
    generator    text,
    period       text NOT NULL CHECK (period IN ('hour', 'day', 'month')),
    window_start timestamptz NOT NULL,
    level        numeric NOT NULL DEFAULT 1,
    figures      jsonb NOT NULL,
    payload      jsonb NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    resolved_at  timestamptz,
    CONSTRAINT alerts_scope_subject CHECK (
        (scope = 'user' AND user_id IS NOT NULL) OR (scope = 'generator' AND generator IS NOT NULL))
);
CREATE INDEX alerts_user_sent_idx ON aurora_telemetry.alerts (user_id, sent_at DESC);
CREATE INDEX alerts_sent_idx ON aurora_telemetry.alerts (sent_at DESC);
COMMENT ON TABLE aurora_telemetry.alerts IS
    'Alert history: one row per alert sent through pg_notify, with its payload; resolved_at for alerts that ended.';
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.alerts', '');
SELECT pg_catalog.pg_extension_config_dump('aurora_telemetry.alerts_id_seq', '');
