-- 0050 attendance totals per enrollment, kept by the database as lines are appended.
--
-- The dashboard's "below the attendance threshold" and GET attendance/below-threshold compare, for
-- every open enrollment, the minutes attended with the minutes its sessions lasted. Summing every
-- current attendance line of the school on each request cost about a second at 10,000 students
-- (83,000 current lines of open enrollments; `npm run bench`'s dashboard scenario answered 6 a
-- second). Lines are append-only and a correction supersedes exactly one line (attendance_records_
-- supersedes_key), so a running total stays exact: each new line adds its own minutes and takes away
-- those of the line it supersedes. A trigger keeps it in the same statement as the lines, so the
-- totals can never disagree with the lines a reader sees.
--
-- The app may only read the totals: the trigger function is SECURITY DEFINER (search_path pinned),
-- so no request can write a total by hand. Counts of minutes only: no personal data.
-- migrate:up
CREATE TABLE attendance_enrollment_totals (
  enrollment_id     uuid PRIMARY KEY REFERENCES enrollments (id) ON DELETE CASCADE,
  -- Minutes attended on current lines, and the minutes those lines' sessions lasted.
  attended_minutes  bigint NOT NULL,
  scheduled_minutes bigint NOT NULL
);

-- One statement-level trigger: a class session recorded in one INSERT (or a COPY chunk of the bench's
-- generator) is one upsert per enrollment, not one per line. Enrollments are upserted in id order, so
-- two sessions recorded at once for the same students wait for each other instead of deadlocking.
CREATE FUNCTION attendance_totals_add_lines() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
  INSERT INTO public.attendance_enrollment_totals AS t (enrollment_id, attended_minutes, scheduled_minutes)
  SELECT d.enrollment_id, sum(d.attended), sum(d.scheduled)
    FROM (SELECT n.enrollment_id, n.minutes_attended AS attended,
                 (extract(epoch FROM n.ended_at - n.started_at) / 60)::int AS scheduled
            FROM new_lines n
          UNION ALL
          -- The line a correction supersedes stops counting.
          SELECT o.enrollment_id, -o.minutes_attended, -(extract(epoch FROM o.ended_at - o.started_at) / 60)::int
            FROM new_lines n JOIN public.attendance_records o ON o.id = n.supersedes_id) d
   GROUP BY d.enrollment_id
   ORDER BY d.enrollment_id
  ON CONFLICT (enrollment_id) DO UPDATE
    SET attended_minutes = t.attended_minutes + excluded.attended_minutes,
        scheduled_minutes = t.scheduled_minutes + excluded.scheduled_minutes;
  RETURN NULL;
END $$;

CREATE TRIGGER attendance_records_keep_totals
  AFTER INSERT ON attendance_records
  REFERENCING NEW TABLE AS new_lines
  FOR EACH STATEMENT EXECUTE FUNCTION attendance_totals_add_lines();

-- The lines recorded before this migration.
INSERT INTO attendance_enrollment_totals (enrollment_id, attended_minutes, scheduled_minutes)
SELECT r.enrollment_id, sum(r.minutes_attended), sum((extract(epoch FROM r.ended_at - r.started_at) / 60)::int)
  FROM attendance_records r
 WHERE NOT EXISTS (SELECT 1 FROM attendance_records n WHERE n.supersedes_id = r.id)
 GROUP BY r.enrollment_id;

GRANT SELECT ON attendance_enrollment_totals TO aada_app;

-- migrate:down
DROP TRIGGER attendance_records_keep_totals ON attendance_records;
DROP FUNCTION attendance_totals_add_lines();
DROP TABLE attendance_enrollment_totals;
