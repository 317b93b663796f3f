-- Bare: the table with aurora_telemetry's columns, NOT NULLs, defaults and indexes, and
-- nothing else: no foreign keys (they are triggers too), no CHECKs, no triggers, no policies.
-- The physical limit for storing these rows.
create table public.generation_logs (
    id            uuid primary key default pg_catalog.gen_random_uuid(),
    user_id       uuid not null,
    generator     text not null,
    time_ms       integer not null,
    cost          numeric(10, 6),
    prompt_length integer not null default 0,
    success       boolean not null default true,
    error_message text,
    metadata      jsonb,
    created_at    timestamptz not null default pg_catalog.now()
);
create index generation_logs_user_created_idx on public.generation_logs (user_id, created_at desc);
create index generation_logs_created_idx on public.generation_logs (created_at);
create index generation_logs_generator_created_idx on public.generation_logs (generator, created_at);

grant usage on schema public to service_role, authenticated;
grant select, insert, delete on public.generation_logs to service_role;
grant select on public.generation_logs to authenticated;
