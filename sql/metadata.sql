-- `doc` without the object keys in `keys`, at any depth (src/metadata.rs calls it only when
-- one occurs). Recursion in SQL keeps deep documents in Postgres, which checks its stack.
CREATE FUNCTION aurora_telemetry.jsonb_without_keys(doc jsonb, keys text[])
    RETURNS jsonb
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
    AS $fn$
        SELECT CASE pg_catalog.jsonb_typeof(doc)
            WHEN 'object' THEN (
                SELECT COALESCE(pg_catalog.jsonb_object_agg(e.key, aurora_telemetry.jsonb_without_keys(e.value, keys)),
                                '{}'::jsonb)
                  FROM pg_catalog.jsonb_each(doc) AS e
                 WHERE e.key <> ALL (keys))
            WHEN 'array' THEN (
                SELECT COALESCE(pg_catalog.jsonb_agg(aurora_telemetry.jsonb_without_keys(a.item, keys) ORDER BY a.position),
                                '[]'::jsonb)
                  FROM pg_catalog.jsonb_array_elements(doc) WITH ORDINALITY AS a(item, position))
            ELSE doc
        END
    $fn$;
