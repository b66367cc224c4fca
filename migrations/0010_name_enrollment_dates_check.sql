-- 0010 names the CHECK that keeps an enrollment's expected end on or after its start.
--
-- 0001 wrote it as a column constraint, so PostgreSQL named it `enrollments_check`: a name that says
-- nothing, and the one the constraint map (lib/errors.ts declareConstraints, declared in
-- lib/enrollments.ts) must refer to. Renaming is catalogue-only: no rows are checked again, no lock
-- beyond a brief one on the table.

-- migrate:up

ALTER TABLE enrollments RENAME CONSTRAINT enrollments_check TO enrollments_dates_in_order;

-- migrate:down

ALTER TABLE enrollments RENAME CONSTRAINT enrollments_dates_in_order TO enrollments_check;
