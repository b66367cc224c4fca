-- 0015 compliance records: attendance in clock hours, skills check-offs, externships, complaints.
--
-- Attendance: class sessions, and attendance lines that are never edited.
--
-- A session is one meeting of a module (live class, lab, externship day, online session) with its start
-- and end. Its attendance is one line per student: a status and the minutes the student actually
-- attended. A line is never changed: a correction is a new line for the same session and student with
-- the next version number, naming the line it supersedes (unique, so a history has no branches), who
-- recorded it, when, and why (the reason is free text about a person: ciphertext). The current line of
-- a student in a session is the one nothing supersedes. The app may read and append, never update or
-- delete (the grants below).
--
-- A line repeats its session's module and times, held equal by one composite foreign key, so the
-- roll-ups by student, enrollment and date read one table. The line names the enrollment its hours
-- count for: a student enrolled twice in one programme has two separate records.
--
-- attendance_records was created by 0001 and never written; it is replaced by the shape above. It keeps
-- the columns 0002's indexes name (user_id, module_id, started_at), and 0002's two indexes are made
-- again here under their names, so rolling 0002 back and forth still works.
--
-- skills_checkoffs, externships and complaints, created by 0001 and never written, are replaced the same way.
--
-- skills_checkoffs: append-only. An attempt at a skill (student, module, skill code, attempt number)
--   is opened by one row: pending, or decided on the spot. A pending attempt is decided by a second row
--   naming it (decides_id, unique). A decision carries the evaluator's name and licence (ciphertext:
--   a person's name and number) and signed_at, set by the server; the evaluator is a user with an
--   evaluating role (evaluator_user_id) or someone external recorded by name and licence.
-- externships: the placement (site, supervisor contact as ciphertext, dates); its hours are the
--   approved entries of externship_hours (one per day), never a typed total. Approval (by the
--   supervisor's confirmation or by staff) and verification set their columns once; the app may
--   change nothing else (column-level grants).
-- complaints: filed by a student or by staff for someone (a student, or a person who is not a user,
--   named in ciphertext); every status change is a row of complaint_transitions with who and when.

-- migrate:up

CREATE TABLE attendance_sessions (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  module_id     uuid NOT NULL REFERENCES modules (id) ON DELETE RESTRICT,
  session_type  text NOT NULL CONSTRAINT attendance_sessions_session_type_check
                  CHECK (session_type IN ('live', 'lab', 'externship', 'online')),
  session_ref   text CONSTRAINT attendance_sessions_session_ref_check
                  CHECK (session_ref IS NULL OR (btrim(session_ref) <> '' AND length(session_ref) <= 100)),
  starts_at     timestamptz NOT NULL,
  ends_at       timestamptz NOT NULL,
  recorded_by   uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  recorded_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT attendance_sessions_times_check
    CHECK (ends_at > starts_at AND ends_at - starts_at <= interval '24 hours'),
  -- The target of the lines' composite foreign key.
  CONSTRAINT attendance_sessions_line_key UNIQUE (id, module_id, starts_at, ends_at)
);

CREATE INDEX idx_attendance_sessions_module ON attendance_sessions (module_id, starts_at);

DROP TABLE attendance_records;

CREATE TABLE attendance_records (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  session_id         uuid NOT NULL,
  module_id          uuid NOT NULL,
  started_at         timestamptz NOT NULL,
  ended_at           timestamptz NOT NULL,
  user_id            uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  enrollment_id      uuid NOT NULL REFERENCES enrollments (id) ON DELETE RESTRICT,
  status             text NOT NULL CONSTRAINT attendance_records_status_check
                       CHECK (status IN ('present', 'absent', 'late', 'left_early')),
  minutes_attended   integer NOT NULL,
  version            integer NOT NULL DEFAULT 1 CONSTRAINT attendance_records_version_positive CHECK (version >= 1),
  supersedes_id      uuid REFERENCES attendance_records (id) ON DELETE RESTRICT,
  reason_ciphertext  text,
  recorded_by        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  recorded_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT attendance_records_session_fkey FOREIGN KEY (session_id, module_id, started_at, ended_at)
    REFERENCES attendance_sessions (id, module_id, starts_at, ends_at) ON DELETE RESTRICT,
  -- Never more minutes than the session lasted; an absence is no minutes.
  CONSTRAINT attendance_records_minutes_check
    CHECK (minutes_attended >= 0 AND minutes_attended * interval '1 minute' <= ended_at - started_at
           AND (status <> 'absent' OR minutes_attended = 0)),
  -- The first line supersedes nothing; every correction supersedes one line and says why.
  CONSTRAINT attendance_records_correction_check
    CHECK ((version = 1) = (supersedes_id IS NULL) AND (version = 1 OR reason_ciphertext IS NOT NULL)),
  -- A line is superseded at most once (two concurrent corrections of it: one wins).
  CONSTRAINT attendance_records_supersedes_key UNIQUE (supersedes_id),
  CONSTRAINT attendance_records_line_version_key UNIQUE (session_id, user_id, version),
  -- One student is not in two sessions of a module that start together (a class recorded twice).
  CONSTRAINT attendance_records_one_place_key UNIQUE (user_id, module_id, started_at, version)
);

-- 0002's names and columns (see above); then the roll-ups by enrollment and the exports by date.
CREATE INDEX idx_attendance_records_user ON attendance_records (user_id, started_at);
CREATE INDEX idx_attendance_records_module ON attendance_records (module_id, started_at);
CREATE INDEX idx_attendance_records_enrollment ON attendance_records (enrollment_id, started_at);
CREATE INDEX idx_attendance_records_started ON attendance_records (started_at, id);

-- Append-only for the app: corrections are new lines.
GRANT SELECT, INSERT ON attendance_sessions, attendance_records TO aada_app;

DROP TABLE skills_checkoffs;

CREATE TABLE skills_checkoffs (
  id                            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  module_id                     uuid NOT NULL REFERENCES modules (id) ON DELETE RESTRICT,
  enrollment_id                 uuid NOT NULL REFERENCES enrollments (id) ON DELETE RESTRICT,
  skill_code                    text NOT NULL CONSTRAINT skills_checkoffs_skill_code_check
                                  CHECK (skill_code ~ '^[A-Z][A-Z0-9_]{1,39}$'),
  attempt                       integer NOT NULL CHECK (attempt >= 1),
  status                        text NOT NULL CONSTRAINT skills_checkoffs_status_check
                                  CHECK (status IN ('pending', 'approved', 'rejected')),
  decides_id                    uuid REFERENCES skills_checkoffs (id) ON DELETE RESTRICT,
  evaluator_user_id             uuid REFERENCES users (id) ON DELETE RESTRICT,
  evaluator_name_ciphertext     text,
  evaluator_license_ciphertext  text,
  evidence_ref_ciphertext       text,
  signed_at                     timestamptz,
  recorded_by                   uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  recorded_at                   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT skills_checkoffs_decision_check
    CHECK (status = 'pending'
           OR (evaluator_name_ciphertext IS NOT NULL AND evaluator_license_ciphertext IS NOT NULL
               AND signed_at IS NOT NULL)),
  CONSTRAINT skills_checkoffs_pending_check CHECK (status <> 'pending' OR (decides_id IS NULL AND signed_at IS NULL)),
  CONSTRAINT skills_checkoffs_decides_key UNIQUE (decides_id)
);

-- One opening row per attempt (two concurrent new attempts: one wins).
CREATE UNIQUE INDEX skills_checkoffs_attempt_key
  ON skills_checkoffs (user_id, module_id, skill_code, attempt) WHERE decides_id IS NULL;
CREATE INDEX idx_skills_checkoffs_user ON skills_checkoffs (user_id);
CREATE INDEX idx_skills_checkoffs_module ON skills_checkoffs (module_id);
CREATE INDEX idx_skills_checkoffs_recorded ON skills_checkoffs (recorded_at, id);

DROP TABLE externships;

CREATE TABLE externships (
  id                                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                           uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  enrollment_id                     uuid NOT NULL REFERENCES enrollments (id) ON DELETE RESTRICT,
  site_name                         text NOT NULL CHECK (btrim(site_name) <> '' AND length(site_name) <= 200),
  site_address                      text CHECK (length(site_address) <= 500),
  supervisor_name_ciphertext        text NOT NULL,
  supervisor_email_ciphertext       text,
  supervisor_phone_ciphertext       text,
  start_date                        date NOT NULL,
  end_date                          date,
  verified_at                       timestamptz,
  verified_by                       uuid REFERENCES users (id) ON DELETE RESTRICT,
  verification_doc_ref_ciphertext   text,
  created_by                        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  created_at                        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT externships_dates_check CHECK (end_date IS NULL OR end_date >= start_date),
  CONSTRAINT externships_verification_check
    CHECK ((verified_at IS NULL) = (verified_by IS NULL)
           AND (verified_at IS NULL) = (verification_doc_ref_ciphertext IS NULL))
);

CREATE INDEX idx_externships_user ON externships (user_id);
CREATE INDEX idx_externships_created ON externships (created_at, id);

CREATE TABLE externship_hours (
  id                                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  externship_id                           uuid NOT NULL REFERENCES externships (id) ON DELETE RESTRICT,
  work_date                               date NOT NULL,
  minutes                                 integer NOT NULL CONSTRAINT externship_hours_minutes_check
                                            CHECK (minutes BETWEEN 1 AND 1440),
  note_ciphertext                         text,
  logged_by                               uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  logged_at                               timestamptz NOT NULL DEFAULT now(),
  approval                                text CHECK (approval IN ('supervisor', 'staff')),
  approved_at                             timestamptz,
  approved_by                             uuid REFERENCES users (id) ON DELETE RESTRICT,
  supervisor_confirmation_ref_ciphertext  text,
  CONSTRAINT externship_hours_approved_check
    CHECK ((approval IS NULL) = (approved_at IS NULL) AND (approval IS NULL) = (approved_by IS NULL)
           AND (approval IS DISTINCT FROM 'supervisor' OR supervisor_confirmation_ref_ciphertext IS NOT NULL)),
  CONSTRAINT externship_hours_day_key UNIQUE (externship_id, work_date)
);

DROP TABLE complaints;

CREATE TABLE complaints (
  id                              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- The complainant when a user; NULL for someone who is not (named below). RESTRICT: kept (GNPEC).
  user_id                         uuid REFERENCES users (id) ON DELETE RESTRICT,
  complainant_name_ciphertext     text,
  complainant_contact_ciphertext  text,
  filed_by                        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  submitted_at                    timestamptz NOT NULL DEFAULT now(),
  category                        text NOT NULL CONSTRAINT complaints_category_check
                                    CHECK (category IN ('academic', 'financial', 'admissions', 'conduct',
                                                        'discrimination', 'facilities', 'safety', 'other')),
  details_ciphertext              text NOT NULL,
  status                          text NOT NULL DEFAULT 'submitted' CONSTRAINT complaints_status_check
                                    CHECK (status IN ('submitted', 'in_review', 'resolved', 'appealed', 'closed')),
  status_changed_at               timestamptz NOT NULL DEFAULT now(),
  resolution_notes_ciphertext     text,
  resolved_at                     timestamptz,
  resolved_by                     uuid REFERENCES users (id) ON DELETE RESTRICT,
  appealed_at                     timestamptz,
  appeal_notes_ciphertext         text,
  CONSTRAINT complaints_complainant_check CHECK (user_id IS NOT NULL OR complainant_name_ciphertext IS NOT NULL),
  CONSTRAINT complaints_resolution_check
    CHECK (status IN ('submitted', 'in_review')
           OR (resolution_notes_ciphertext IS NOT NULL AND resolved_at IS NOT NULL AND resolved_by IS NOT NULL)),
  CONSTRAINT complaints_appeal_check CHECK (status <> 'appealed' OR appealed_at IS NOT NULL)
);

CREATE INDEX idx_complaints_user ON complaints (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX idx_complaints_open ON complaints (submitted_at) WHERE status <> 'resolved';
CREATE INDEX idx_complaints_submitted ON complaints (submitted_at, id);

CREATE TABLE complaint_transitions (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  complaint_id      uuid NOT NULL REFERENCES complaints (id) ON DELETE RESTRICT,
  from_status       text,
  to_status         text NOT NULL,
  notes_ciphertext  text,
  changed_by        uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  changed_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX idx_complaint_transitions_complaint ON complaint_transitions (complaint_id, changed_at);

GRANT SELECT, INSERT ON skills_checkoffs, externships, externship_hours, complaint_transitions TO aada_app;
GRANT UPDATE (verified_at, verified_by, verification_doc_ref_ciphertext, end_date) ON externships TO aada_app;
GRANT UPDATE (approval, approved_at, approved_by, supervisor_confirmation_ref_ciphertext) ON externship_hours TO aada_app;
GRANT SELECT, INSERT, UPDATE ON complaints TO aada_app;

-- migrate:down

DROP TABLE complaint_transitions;
DROP TABLE complaints;
DROP TABLE externship_hours;
DROP TABLE externships;
DROP TABLE skills_checkoffs;

CREATE TABLE skills_checkoffs (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id            uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  module_id          uuid NOT NULL REFERENCES modules (id) ON DELETE RESTRICT,
  skill_code         text NOT NULL CHECK (btrim(skill_code) <> ''),
  status             text NOT NULL DEFAULT 'pending'
                       CHECK (status IN ('pending', 'in_review', 'approved', 'rejected')),
  evaluator_user_id  uuid REFERENCES users (id) ON DELETE RESTRICT,
  evaluator_name     text,
  evaluator_license  text,
  evidence_url       text,
  signed_at          timestamptz,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CHECK (status NOT IN ('approved', 'rejected')
         OR (evaluator_name IS NOT NULL AND evaluator_license IS NOT NULL AND signed_at IS NOT NULL))
);

CREATE TABLE externships (
  id                            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  site_name                     text NOT NULL CHECK (btrim(site_name) <> ''),
  site_address                  text,
  supervisor_name_ciphertext    text,
  supervisor_email_ciphertext   text,
  supervisor_phone_ciphertext   text,
  total_hours                   numeric(7,2) NOT NULL DEFAULT 0 CHECK (total_hours >= 0),
  verified                      boolean NOT NULL DEFAULT false,
  verification_doc_url          text,
  verified_at                   timestamptz,
  verified_by                   uuid REFERENCES users (id) ON DELETE RESTRICT,
  created_at                    timestamptz NOT NULL DEFAULT now(),
  updated_at                    timestamptz NOT NULL DEFAULT now(),
  CHECK (NOT verified OR (verification_doc_url IS NOT NULL AND verified_at IS NOT NULL))
);

CREATE TABLE complaints (
  id                           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id                      uuid REFERENCES users (id) ON DELETE RESTRICT,
  submitted_at                 timestamptz NOT NULL DEFAULT now(),
  category                     text,
  details_ciphertext           text NOT NULL,
  status                       text NOT NULL DEFAULT 'open'
                                 CHECK (status IN ('open', 'in_review', 'resolved', 'appealed')),
  resolution_notes_ciphertext  text,
  resolution_at                timestamptz,
  resolved_by                  uuid REFERENCES users (id) ON DELETE RESTRICT,
  appealed_at                  timestamptz,
  appeal_notes_ciphertext      text,
  created_at                   timestamptz NOT NULL DEFAULT now(),
  updated_at                   timestamptz NOT NULL DEFAULT now(),
  CHECK (status NOT IN ('resolved', 'appealed')
         OR (resolution_notes_ciphertext IS NOT NULL AND resolution_at IS NOT NULL)),
  CHECK (status <> 'appealed' OR appealed_at IS NOT NULL)
);

CREATE TRIGGER skills_checkoffs_set_updated_at BEFORE UPDATE ON skills_checkoffs
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER externships_set_updated_at BEFORE UPDATE ON externships
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE TRIGGER complaints_set_updated_at BEFORE UPDATE ON complaints
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE INDEX idx_skills_checkoffs_user ON skills_checkoffs (user_id);
CREATE INDEX idx_skills_checkoffs_module ON skills_checkoffs (module_id);
CREATE INDEX idx_externships_user ON externships (user_id);
CREATE INDEX idx_complaints_user ON complaints (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX idx_complaints_open ON complaints (submitted_at) WHERE status <> 'resolved';
GRANT SELECT, INSERT, UPDATE ON skills_checkoffs, externships, complaints TO aada_app;


DROP TABLE attendance_records;
DROP TABLE attendance_sessions;

CREATE TABLE attendance_records (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
  module_id     uuid NOT NULL REFERENCES modules (id) ON DELETE RESTRICT,
  session_type  text NOT NULL CHECK (session_type IN ('live', 'lab', 'externship')),
  session_ref   text,
  started_at    timestamptz NOT NULL,
  ended_at      timestamptz NOT NULL,
  recorded_by   uuid REFERENCES users (id) ON DELETE RESTRICT,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  voided_at     timestamptz,
  voided_by     uuid REFERENCES users (id) ON DELETE RESTRICT,
  void_reason   text,
  CHECK (ended_at > started_at),
  CHECK ((voided_at IS NULL) = (void_reason IS NULL)),
  CHECK ((voided_at IS NULL) = (voided_by IS NULL))
);
CREATE TRIGGER attendance_records_set_updated_at BEFORE UPDATE ON attendance_records
  FOR EACH ROW EXECUTE FUNCTION set_updated_at();
CREATE INDEX idx_attendance_records_user ON attendance_records (user_id, started_at);
CREATE INDEX idx_attendance_records_module ON attendance_records (module_id, started_at);
GRANT SELECT, INSERT, UPDATE ON attendance_records TO aada_app;
