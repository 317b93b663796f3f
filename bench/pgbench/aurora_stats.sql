-- aurora_telemetry's get_user_usage_stats for user :u, all time (as an administrator: the
-- superuser running pgbench), to compare with aurora_stats_inner.sql at the same rate.
SELECT * FROM public.get_user_usage_stats(('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid, NULL, NULL);
