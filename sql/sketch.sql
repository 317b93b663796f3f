-- sketch_union: the merge of every non-NULL latency sketch in a group; NULL when there is none.
-- sketch_merge is not strict and treats NULL as empty, so the NULL initial state needs no
-- special case, and being exact and order-independent it also combines parallel partial states.
CREATE AGGREGATE aurora_telemetry.sketch_union(sketch pg_catalog.bytea) (
    sfunc = aurora_telemetry.sketch_merge,
    stype = pg_catalog.bytea,
    combinefunc = aurora_telemetry.sketch_merge,
    parallel = safe
);
COMMENT ON AGGREGATE aurora_telemetry.sketch_union(pg_catalog.bytea) IS
    'Merge of all non-NULL latency sketches (DDSketch, 1% relative accuracy); NULL if none.';
