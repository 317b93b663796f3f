-- Cluster-wide roles of the benchmark (run once in database postgres).
-- bench_service: the logging backend's login; every session starts as service_role, as a
--                server using Supabase's service key does.
-- bench_user:    a login that acts as an end user (authenticated + JWT claims), as PostgREST does.
do $$
begin
    if not exists (select from pg_catalog.pg_roles where rolname = 'anon') then
        create role anon nologin noinherit;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'authenticated') then
        create role authenticated nologin noinherit;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'service_role') then
        create role service_role nologin noinherit bypassrls;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'bench_service') then
        create role bench_service login;
    end if;
    if not exists (select from pg_catalog.pg_roles where rolname = 'bench_user') then
        create role bench_user login;
    end if;
end
$$;
grant service_role to bench_service;
grant authenticated to bench_user;
alter role bench_service set role = 'service_role';
alter role bench_user set role = 'authenticated';
