-- migrate:up
-- Statements drive module progress (issue 13 item 6; lib/xapi-progress.ts, docs/xapi.md "Into the LMS"):
-- * module_xapi_activities: the activity IRIs of course content that belong to a module, set by the
--   module's editors. A statement about one of them is about that module;
-- * xapi_progress_events: what a student's own statement did to a module's progress, one row per
--   (statement, module), written in the statement's transaction with the progress it changes. It is the
--   provenance of xAPI-driven progress (which statement moved it, what the module was before), what makes a
--   replay change nothing (one row per statement), what voiding undoes, and the "last xAPI activity" the
--   progress view shows.
CREATE TABLE module_xapi_activities (
  module_id    uuid NOT NULL CONSTRAINT module_xapi_activities_module_id_fkey REFERENCES modules (id) ON DELETE RESTRICT,
  activity_iri text NOT NULL CONSTRAINT module_xapi_activities_activity_iri_check CHECK (length(activity_iri) BETWEEN 1 AND 2048),
  created_by   uuid NOT NULL CONSTRAINT module_xapi_activities_created_by_fkey REFERENCES users (id) ON DELETE RESTRICT,
  created_at   timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT module_xapi_activities_pkey PRIMARY KEY (module_id, activity_iri)
);
-- A statement's activity is looked up by its IRI.
CREATE INDEX module_xapi_activities_iri_idx ON module_xapi_activities (activity_iri);
CREATE INDEX module_xapi_activities_created_by_idx ON module_xapi_activities (created_by);

CREATE TABLE xapi_progress_events (
  statement_id        uuid NOT NULL CONSTRAINT xapi_progress_events_statement_id_fkey REFERENCES xapi_statements (id) ON DELETE RESTRICT,
  enrollment_id       uuid NOT NULL CONSTRAINT xapi_progress_events_enrollment_id_fkey REFERENCES enrollments (id) ON DELETE RESTRICT,
  module_id           uuid NOT NULL CONSTRAINT xapi_progress_events_module_id_fkey REFERENCES modules (id) ON DELETE RESTRICT,
  activity_iri        text NOT NULL CONSTRAINT xapi_progress_events_activity_iri_check CHECK (length(activity_iri) BETWEEN 1 AND 2048),
  -- The ADL verb's last word (completed, passed, attempted, …), 'other' for any other verb.
  verb                text NOT NULL CONSTRAINT xapi_progress_events_verb_check CHECK (verb ~ '^[a-z]{1,32}$'),
  stored              timestamptz NOT NULL,
  -- A completed or passed statement: it completed the module (or found it completed).
  completes           boolean NOT NULL,
  -- The module's progress just before this statement (NULL status: no progress row yet).
  status_before       text CONSTRAINT xapi_progress_events_status_before_check
                        CHECK (status_before IN ('not_started', 'incomplete', 'completed', 'passed', 'failed')),
  progress_pct_before integer NOT NULL CONSTRAINT xapi_progress_events_progress_pct_before_check
                        CHECK (progress_pct_before BETWEEN 0 AND 100),
  voided              boolean NOT NULL DEFAULT false,
  CONSTRAINT xapi_progress_events_pkey PRIMARY KEY (statement_id, module_id)
);
-- The progress view's last xAPI activity of a module, and voiding's "is another completion left".
CREATE INDEX xapi_progress_events_module_idx ON xapi_progress_events (enrollment_id, module_id, stored DESC);
CREATE INDEX xapi_progress_events_module_id_idx ON xapi_progress_events (module_id);

GRANT SELECT, INSERT, DELETE ON module_xapi_activities TO aada_app;
GRANT SELECT, INSERT ON xapi_progress_events TO aada_app;
-- Voiding the statement is the only change an event sees.
GRANT UPDATE (voided) ON xapi_progress_events TO aada_app;

-- migrate:down
DROP TABLE xapi_progress_events;
DROP TABLE module_xapi_activities;
