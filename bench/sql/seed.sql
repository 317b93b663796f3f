-- Seed: the design of the seed document (telemetry-and-usage-monitoring.md), run after
-- tests/fixtures/supabase_auth.sql. Everything between the "as written" markers is copied verbatim from the
-- seed; the only additions are marked below.

-- uuid_generate_v4() comes from the uuid-ossp contrib extension.
create extension if not exists "uuid-ossp";

-- ---- as written in the seed: table ----
CREATE TABLE generation_logs (
  id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
  user_id UUID NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  generator TEXT NOT NULL CHECK (generator IN ('Imagen-3', 'Midjourney', 'Claude')),
  time_ms INTEGER NOT NULL,
  cost DECIMAL(10, 6),
  prompt_length INTEGER DEFAULT 0,
  success BOOLEAN DEFAULT TRUE,
  error_message TEXT,
  metadata JSONB,
  created_at TIMESTAMPTZ DEFAULT NOW()
);
-- ---- end ----

-- Addition: the same secondary indexes as Bare and aurora_telemetry, so that the three
-- designs store the same table and indexes and differ only in their logic. The seed as
-- written has none (Supabase's advisor flags the unindexed foreign key user_id); the
-- harness measures that variant separately ("Seed as written").
create index generation_logs_user_created_idx on public.generation_logs (user_id, created_at desc);
create index generation_logs_created_idx on public.generation_logs (created_at);
create index generation_logs_generator_created_idx on public.generation_logs (generator, created_at);

-- The seed says to verify that row level security is enabled.
alter table generation_logs enable row level security;

-- ---- as written in the seed: policies ----
-- Users can view their own logs
CREATE POLICY "Users can view own generation logs"
  ON generation_logs FOR SELECT
  TO authenticated
  USING (auth.uid() = user_id);

-- Service role can insert logs
CREATE POLICY "Service role can insert generation logs"
  ON generation_logs FOR INSERT
  TO service_role
  WITH CHECK (true);
-- ---- end ----

-- ---- as written in the seed: cost alert ----
CREATE OR REPLACE FUNCTION check_daily_cost_alert()
RETURNS TRIGGER AS $$
DECLARE
  daily_cost DECIMAL;
BEGIN
  SELECT SUM(cost) INTO daily_cost
  FROM generation_logs
  WHERE user_id = NEW.user_id
    AND created_at >= CURRENT_DATE;
  
  IF daily_cost > 10.00 THEN
    -- Send notification (implement with pg_notify or external service)
    PERFORM pg_notify('cost_alert', 
      json_build_object(
        'user_id', NEW.user_id,
        'daily_cost', daily_cost
      )::text
    );
  END IF;
  
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER daily_cost_check
  AFTER INSERT ON generation_logs
  FOR EACH ROW
  EXECUTE FUNCTION check_daily_cost_alert();
-- ---- end ----
