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
