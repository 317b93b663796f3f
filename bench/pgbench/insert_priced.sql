-- The same generation per transaction, without a cost: aurora_telemetry prices it from its
-- catalog in its row trigger. Client c logs for user :ubase + c.
\set u :ubase + :client_id
\set g random(1, 10)
\set r random(1, 100)
\set t random(400, 9000)
\set p random(10, 2000)
INSERT INTO public.generation_logs (user_id, generator, time_ms, prompt_length, success, error_message, metadata)
VALUES (('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid,
        CASE WHEN :g <= 5 THEN 'Claude' WHEN :g <= 8 THEN 'Imagen-3' ELSE 'Midjourney' END,
        :t, :p, :r > 5, CASE WHEN :r <= 5 THEN 'API rate limit exceeded' END,
        '{"vibe": "serene", "resolution": "1024x1024"}');
