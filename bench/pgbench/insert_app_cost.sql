-- One generation per transaction, as the seed's POST /api/telemetry/log stores it: the
-- application computed the cost (calculateCost). Used for Bare and Seed.
-- Client c logs for user :ubase + c, so concurrent clients never share a user.
\set u :ubase + :client_id
\set g random(1, 10)
\set r random(1, 100)
\set t random(400, 9000)
\set p random(10, 2000)
INSERT INTO public.generation_logs (user_id, generator, time_ms, cost, prompt_length, success, error_message, metadata)
VALUES (('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid,
        CASE WHEN :g <= 5 THEN 'Claude' WHEN :g <= 8 THEN 'Imagen-3' ELSE 'Midjourney' END,
        :t,
        CASE WHEN :r <= 5 THEN 0 WHEN :g <= 5 THEN 0.015 WHEN :g <= 8 THEN 0.04 ELSE 0.06 END,
        :p, :r > 5, CASE WHEN :r <= 5 THEN 'API rate limit exceeded' END,
        '{"vibe": "serene", "resolution": "1024x1024"}');
