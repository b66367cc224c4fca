-- 0002 performance indexes: the seed's index migration (seed/performance-improvements.md §1), corrected
-- for this schema, plus the foreign-key and filter indexes the original lacked (original-system.md §1.3).
--
-- Built CONCURRENTLY (no write lock on live tables), so this file runs outside a transaction, one
-- statement at a time. Every statement is idempotent (IF NOT EXISTS / IF EXISTS): if a build fails half
-- way the file is not recorded and is simply run again (the runner first drops an INVALID index left
-- behind by a failed build of a name this file creates).
--
-- Seed index                                   -> this migration
-- idx_enrollments_user_id (user_id)            -> idx_enrollments_user_program (user_id, program_id):
--                                                 one index serves both (user_id is its leading column)
-- idx_enrollments_program_id (program_id)      -> idx_enrollments_program_status (program_id, status)
-- idx_refresh_tokens_user_id (user_id)         -> idx_refresh_tokens_user_id (user_id)
-- idx_audit_logs_user_id (user_id)             -> dropped: subsumed by idx_audit_log_user (below)
-- idx_signed_documents_user_id (user_id)       -> idx_signed_documents_user_id (user_id) WHERE user_id IS NOT NULL
-- idx_users_status (status)                    -> dropped: ~4 values, nearly all 'active'; a plan never
--                                                 prefers it, and status is read from the row fetched by key
-- idx_enrollments_status (status)              -> reshaped: idx_enrollments_program_status (program_id, status);
--                                                 status alone has six values and is filtered per program
-- idx_payments_status ON payments(status)      -> there is no payments table and no payment status: payments
--                                                 are ledger lines. idx_ledger_entries_user_created
--                                                 (user_id, created_at) for balances and payment history,
--                                                 idx_ledger_entries_type_created (entry_type, created_at)
--                                                 for "payments/refunds in a period"
-- idx_enrollments_user_program (user_id, program_id)
--                                              -> idx_enrollments_user_program (user_id, program_id); the
--                                                 partial unique index of 0001 covers only open enrollments
-- idx_audit_logs_user_created (user_id, created_at)
--                                              -> idx_audit_log_user (user_id, occurred_at, id)
--                                                 WHERE user_id IS NOT NULL: a user's activity, keyset-paged
-- idx_xapi_actor_gin GIN (actor) jsonb_ops     -> dropped: no query of the LRS uses containment on actor.
--                                                 The agent filter queries actor_user_id or actor->>'mbox':
--                                                 idx_xapi_statements_actor_user (actor_user_id, timestamp)
--                                                 and idx_xapi_statements_actor_mbox ((actor->>'mbox'), timestamp)
--
-- Already provided by constraints of 0001 (not duplicated here):
--   modules(program_id, position)            modules_program_id_position_key (also the program_id FK index)
--   module_progress(enrollment_id, module_id) module_progress_enrollment_id_module_id_key
--   scorm_records(user_id, module_id)        scorm_records_user_id_module_id_key
--   document_signatures(document_id)         document_signatures_document_id_signature_type_key
--   registration_requests(token_hash), refresh_tokens(token_hash), signed_documents(signing_token_hash),
--   credentials(user_id, program_id), refunds(ledger_entry_id), ledger_entries(idempotency_key):  UNIQUE
--
-- Foreign keys indexed: every "subject" reference (user_id, program_id, module_id, enrollment_id,
-- document_id, ...), so joins, per-record lists and the RESTRICT checks are index lookups. "Actor"
-- references (recorded_by, approved_by, voided_by, ...) are not indexed: they are only read when a user
-- is deleted, which is rare and only possible for a user without history.

-- migrate:no-transaction
-- migrate:up

-- Identity and access
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_name_search_tokens ON users USING gin (name_search_tokens);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_users_created ON users (created_at, id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_user_roles_role ON user_roles (role_name, user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_refresh_tokens_user_id ON refresh_tokens (user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_refresh_tokens_family_id ON refresh_tokens (family_id);
-- Self-reference: without it, pruning N tokens scans the table N times for ON DELETE SET NULL.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_refresh_tokens_replaced_by ON refresh_tokens (replaced_by) WHERE replaced_by IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_login_attempts_account ON login_attempts (account_key, attempted_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_registration_requests_email ON registration_requests (email_blind_index);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_outbox_messages_queued ON outbox_messages (next_attempt_at) WHERE status = 'queued';

-- Academic structure
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_instructor_assignments_program ON instructor_assignments (program_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_enrollments_user_program ON enrollments (user_id, program_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_enrollments_program_status ON enrollments (program_id, status);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_module_progress_module ON module_progress (module_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_scorm_records_module ON scorm_records (module_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_xapi_statements_timestamp ON xapi_statements (timestamp);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_xapi_statements_actor_user ON xapi_statements (actor_user_id, timestamp) WHERE actor_user_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_xapi_statements_actor_mbox ON xapi_statements ((actor ->> 'mbox'), timestamp) WHERE (actor ->> 'mbox') IS NOT NULL;

-- Audit log: keyset paging on (occurred_at, id); the PHI-access view; a user's activity
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_audit_log_occurred ON audit_log (occurred_at, id);
-- The seed-style (phi, occurred_at, id) with a constant leading column is redundant in a partial index.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_audit_log_phi ON audit_log (occurred_at, id) WHERE phi;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_audit_log_user ON audit_log (user_id, occurred_at, id) WHERE user_id IS NOT NULL;

-- Compliance records
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_attendance_records_user ON attendance_records (user_id, started_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_attendance_records_module ON attendance_records (module_id, started_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_skills_checkoffs_user ON skills_checkoffs (user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_skills_checkoffs_module ON skills_checkoffs (module_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_externships_user ON externships (user_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_complaints_user ON complaints (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_complaints_open ON complaints (submitted_at) WHERE status <> 'resolved';
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_credentials_program ON credentials (program_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_transcripts_user ON transcripts (user_id, generated_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_transcripts_program ON transcripts (program_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_withdrawals_enrollment ON withdrawals (enrollment_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_refunds_withdrawal ON refunds (withdrawal_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_ledger_entries_user_created ON ledger_entries (user_id, created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_ledger_entries_type_created ON ledger_entries (entry_type, created_at);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_ledger_entries_program ON ledger_entries (program_id) WHERE program_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_ledger_entries_enrollment ON ledger_entries (enrollment_id) WHERE enrollment_id IS NOT NULL;

-- Enrollment agreements
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_leads_email ON leads (email_blind_index);
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_signed_documents_user_id ON signed_documents (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_signed_documents_lead_id ON signed_documents (lead_id) WHERE lead_id IS NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_signed_documents_template_id ON signed_documents (template_id);
-- status alone is low-cardinality; the lists that filter on it ask for the open agreements, a minority.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_signed_documents_open ON signed_documents (status, created_at) WHERE status IN ('pending', 'viewed', 'student_signed');
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_document_events_document ON document_events (document_id, occurred_at);

-- migrate:down

DROP INDEX CONCURRENTLY IF EXISTS idx_document_events_document;
DROP INDEX CONCURRENTLY IF EXISTS idx_signed_documents_open;
DROP INDEX CONCURRENTLY IF EXISTS idx_signed_documents_template_id;
DROP INDEX CONCURRENTLY IF EXISTS idx_signed_documents_lead_id;
DROP INDEX CONCURRENTLY IF EXISTS idx_signed_documents_user_id;
DROP INDEX CONCURRENTLY IF EXISTS idx_leads_email;
DROP INDEX CONCURRENTLY IF EXISTS idx_ledger_entries_enrollment;
DROP INDEX CONCURRENTLY IF EXISTS idx_ledger_entries_program;
DROP INDEX CONCURRENTLY IF EXISTS idx_ledger_entries_type_created;
DROP INDEX CONCURRENTLY IF EXISTS idx_ledger_entries_user_created;
DROP INDEX CONCURRENTLY IF EXISTS idx_refunds_withdrawal;
DROP INDEX CONCURRENTLY IF EXISTS idx_withdrawals_enrollment;
DROP INDEX CONCURRENTLY IF EXISTS idx_transcripts_program;
DROP INDEX CONCURRENTLY IF EXISTS idx_transcripts_user;
DROP INDEX CONCURRENTLY IF EXISTS idx_credentials_program;
DROP INDEX CONCURRENTLY IF EXISTS idx_complaints_open;
DROP INDEX CONCURRENTLY IF EXISTS idx_complaints_user;
DROP INDEX CONCURRENTLY IF EXISTS idx_externships_user;
DROP INDEX CONCURRENTLY IF EXISTS idx_skills_checkoffs_module;
DROP INDEX CONCURRENTLY IF EXISTS idx_skills_checkoffs_user;
DROP INDEX CONCURRENTLY IF EXISTS idx_attendance_records_module;
DROP INDEX CONCURRENTLY IF EXISTS idx_attendance_records_user;
DROP INDEX CONCURRENTLY IF EXISTS idx_audit_log_user;
DROP INDEX CONCURRENTLY IF EXISTS idx_audit_log_phi;
DROP INDEX CONCURRENTLY IF EXISTS idx_audit_log_occurred;
DROP INDEX CONCURRENTLY IF EXISTS idx_xapi_statements_actor_mbox;
DROP INDEX CONCURRENTLY IF EXISTS idx_xapi_statements_actor_user;
DROP INDEX CONCURRENTLY IF EXISTS idx_xapi_statements_timestamp;
DROP INDEX CONCURRENTLY IF EXISTS idx_scorm_records_module;
DROP INDEX CONCURRENTLY IF EXISTS idx_module_progress_module;
DROP INDEX CONCURRENTLY IF EXISTS idx_enrollments_program_status;
DROP INDEX CONCURRENTLY IF EXISTS idx_enrollments_user_program;
DROP INDEX CONCURRENTLY IF EXISTS idx_instructor_assignments_program;
DROP INDEX CONCURRENTLY IF EXISTS idx_outbox_messages_queued;
DROP INDEX CONCURRENTLY IF EXISTS idx_registration_requests_email;
DROP INDEX CONCURRENTLY IF EXISTS idx_login_attempts_account;
DROP INDEX CONCURRENTLY IF EXISTS idx_refresh_tokens_replaced_by;
DROP INDEX CONCURRENTLY IF EXISTS idx_refresh_tokens_family_id;
DROP INDEX CONCURRENTLY IF EXISTS idx_refresh_tokens_user_id;
DROP INDEX CONCURRENTLY IF EXISTS idx_user_roles_role;
DROP INDEX CONCURRENTLY IF EXISTS idx_users_created;
DROP INDEX CONCURRENTLY IF EXISTS idx_users_name_search_tokens;
