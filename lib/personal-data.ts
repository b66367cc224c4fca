// Every column that can hold text or bytes (text, varchar, bytea, json/jsonb and arrays of them), and
// how the personal data in it is protected — the one place that says so. test/personal-data.test.ts
// walks the live schema of a migrated database and fails when such a column is missing here, or when a
// column declared here no longer exists; `npm run keys:rotate` (dev/rotate-keys.ts) re-encrypts exactly
// the columns declared `encrypted` and encrypts the legacy plaintext they replaced.
//
// What counts as personal data: anything that identifies a person or that a person wrote or that
// describes them in free text (names, contact details, documents with their name, answers, reasons
// given about them). Structured record values keyed by user_id (a status from a fixed list, a score, a
// date, hours) identify no one by themselves and stay in the clear so PostgreSQL can compute on them;
// whose they are is the row's user_id, which the access rules guard.
//
// Adding a column: declare it here in the same commit as its migration, with one of the kinds below.
// "No personal data" needs a reason a reviewer can check; free text about a person is never that.
//
// Why one file over 350 lines: it is a table, one entry per column of the schema, so a column's
// protection is found (and reviewed) on one page; it grows with the schema, not with code.
import type { PiiField } from './crypto';

export type Protection =
  /**
   * AES-256-GCM in the application (lib/crypto.ts), with `field` as associated data. `legacyPlaintext`
   * names the plaintext column this one replaced: the app no longer writes it, reads it only where the
   * ciphertext is NULL, and keys:rotate encrypts what is left in it into this column and clears it.
   */
  | { kind: 'encrypted'; field: PiiField; legacyPlaintext?: string }
  /** A keyed HMAC of a value (lib/crypto.ts emailBlindIndex): equality lookups without the value. */
  | { kind: 'blind-index'; of: string }
  /** Keyed HMAC tokens of name prefixes (lib/crypto.ts nameSearchTokens): prefix search without the name. */
  | { kind: 'name-tokens' }
  /** A one-way hash of a secret or a document (a password, a token, a file's SHA-256). */
  | { kind: 'hashed'; of: string }
  | { kind: 'no-personal-data'; why: string }
  /**
   * A column of a table that no code in lib/ or functions/ writes yet, which would hold personal data
   * once something does. The schema test fails as soon as lib/ or functions/ names the table: the
   * area that starts writing it must protect the column first and change its declaration.
   */
  | { kind: 'not-written-yet'; why: string }
  /**
   * Plaintext from before its column was encrypted (derived from `legacyPlaintext`, never declared by
   * hand): NULL in every row the app writes now, emptied by keys:rotate.
   */
  | { kind: 'legacy-plaintext'; encryptedInto: string };

const encrypted = (field: PiiField, legacyPlaintext?: string): Protection =>
  legacyPlaintext ? { kind: 'encrypted', field, legacyPlaintext } : { kind: 'encrypted', field };
const none = (why: string): Protection => ({ kind: 'no-personal-data', why });
const hashed = (of: string): Protection => ({ kind: 'hashed', of });

const STATE = none('a state or kind from a fixed list (a CHECK constraint or the code that writes it)');
const CATALOGUE = none("the school's published catalogue (programmes and modules), the same for everyone");
const COURSE_CONTENT = none("a lesson the programme's instructors wrote, the same for every student of it");
const USER_AGENT = none("the client's User-Agent header: software and device type, names no one");
const SHA256 = hashed('the SHA-256 of a document');
const TEMPLATE = none('a blank form of the school, before anyone fills it in');

export const PERSONAL_DATA: Readonly<Record<string, Readonly<Record<string, Protection>>>> = {
  users: {
    email_ciphertext: encrypted('users.email'),
    email_blind_index: { kind: 'blind-index', of: 'the normalised email' },
    first_name_ciphertext: encrypted('users.first_name'),
    last_name_ciphertext: encrypted('users.last_name'),
    name_search_tokens: { kind: 'name-tokens' },
    password_hash: hashed('the password (argon2id)'),
    status: STATE,
  },
  roles: { name: STATE, description: none('what a role may do, written by the school') },
  user_roles: { role_name: STATE },
  refresh_tokens: { token_hash: hashed('the refresh token (SHA-256)'), revoke_reason: STATE, user_agent: USER_AGENT },
  login_attempts: { account_key: { kind: 'blind-index', of: 'the email a sign-in was tried with' } },
  rate_limit_buckets: {
    key: none('a throttling scope with a network prefix or a user id (login:192.0.2.1/32), kept for one window'),
  },
  registration_requests: {
    email_ciphertext: encrypted('registration_requests.email'),
    email_blind_index: { kind: 'blind-index', of: 'the normalised email' },
    status: STATE,
    user_agent: USER_AGENT,
  },
  one_time_tokens: {
    purpose: STATE,
    token_hash: hashed('the token of an emailed link or a single-use step (SHA-256; lib/one-time-links.ts)'),
  },
  outbox_messages: {
    kind: STATE,
    recipient_ciphertext: encrypted('outbox.recipient'),
    subject: none("the fixed subject line of the message's kind; anything personal is in the body"),
    body_ciphertext: encrypted('outbox.body'),
    status: STATE,
    last_error: none("the provider's status and error code (lib/outbox.ts), never the message or its address"),
  },
  programs: { code: CATALOGUE, name: CATALOGUE, description: CATALOGUE, credential_level: CATALOGUE, status: STATE },
  modules: { code: CATALOGUE, title: CATALOGUE, description: CATALOGUE, delivery_type: STATE },
  lesson_versions: {
    title: COURSE_CONTENT,
    markdown: COURSE_CONTENT,
    html: none('the Markdown of the same row rendered and sanitised (lib/lesson-html.ts)'),
  },
  content_files: {
    name: none("a course file's name within its module (guide.pdf), chosen by the programme's instructors"),
    kind: STATE,
  },
  h5p_activities: {
    activity_key: none("the id a lesson names in its (H5P: id) marker, chosen by the programme's instructors"),
    title: COURSE_CONTENT,
    main_library: none('the H5P library that runs the activity (H5P.MultiChoice), from the package'),
    h5p_json: COURSE_CONTENT,
  },
  h5p_activity_files: {
    path: none('a path inside an H5P package (content/images/tooth.png), validated at upload'),
  },
  // An H5P content type keeps anything in its state (free-text answers included): the student's own words.
  h5p_user_states: { state_ciphertext: encrypted('h5p_user_states.state') },
  enrollments: { status: STATE },
  enrollment_status_changes: {
    from_status: STATE,
    to_status: STATE,
    reason_ciphertext: encrypted('enrollment_status_changes.reason'),
  },
  module_progress: { status: STATE, sections_viewed: none("ids of the module's sections a learner opened") },
  module_xapi_activities: {
    activity_iri: none("an activity IRI of a module's course content, set by its editors, the same for every learner"),
  },
  xapi_progress_events: {
    activity_iri: none("one of the module's mapped activity IRIs (module_xapi_activities): course content"),
    verb: STATE,
    status_before: STATE,
  },
  scorm_records: {
    lesson_status: STATE,
    session_time: none('a duration reported by the course package'),
    // The package stores anything in suspend_data (free-text answers included), and interactions carry
    // the learner's responses: both are the learner's own words.
    suspend_data_ciphertext: encrypted('scorm_records.suspend_data', 'suspend_data'),
    interactions_ciphertext: encrypted('scorm_records.interactions', 'interactions'),
  },
  transcripts: {
    kind: STATE,
    lines: none('the module lines a transcript certified (codes, titles, hours, statuses, scores); no name'),
  },
  transcript_documents: {
    // The PDF prints the student's name and record.
    content_ciphertext: encrypted('transcript_documents.content', 'content'),
    content_type: STATE,
    sha256: SHA256,
  },
  credentials: {
    credential_type: CATALOGUE,
    cert_serial: none('a random serial number the school prints on the certificate'),
    revoke_reason_ciphertext: encrypted('credentials.revoke_reason', 'revoke_reason'),
  },
  audit_log: {
    request_id: none('a random request id'),
    roles: STATE,
    method: STATE,
    route: none('the route template (students/{id}), never the URL or its query'),
    resource_ids: none('the path parameters of the request: ids'),
    user_agent: USER_AGENT,
    event: STATE,
  },
  audit_daily_routes: {
    method: STATE,
    route: none('the route template (students/{id}), as in audit_log'),
  },
  schema_migrations: {
    version: none('a migration file'),
    name: none('a migration file'),
    checksum: none('a migration file'),
  },

  // Compliance, finance and agreements: tables created ahead of the areas that will use them.
  attendance_sessions: { session_type: STATE, session_ref: none('a meeting id or lab code') },
  attendance_records: {
    status: STATE,
    // Why a line was corrected: free text staff write about a student.
    reason_ciphertext: encrypted('attendance_records.reason'),
  },
  skills_checkoffs: {
    skill_code: CATALOGUE,
    status: STATE,
    evaluator_name_ciphertext: encrypted('skills_checkoffs.evaluator_name'),
    evaluator_license_ciphertext: encrypted('skills_checkoffs.evaluator_license'),
    // A reference to a student's evidence (a file name, a link) may name them.
    evidence_ref_ciphertext: encrypted('skills_checkoffs.evidence_ref'),
  },
  externships: {
    site_name: none('the name of a dental practice (a business)'),
    site_address: none('the address of a dental practice (a business)'),
    supervisor_name_ciphertext: encrypted('externships.supervisor_name'),
    supervisor_email_ciphertext: encrypted('externships.supervisor_email'),
    supervisor_phone_ciphertext: encrypted('externships.supervisor_phone'),
    verification_doc_ref_ciphertext: encrypted('externships.verification_doc_ref'),
  },
  externship_hours: {
    note_ciphertext: encrypted('externship_hours.note'),
    approval: STATE,
    supervisor_confirmation_ref_ciphertext: encrypted('externship_hours.supervisor_confirmation_ref'),
  },
  complaints: {
    complainant_name_ciphertext: encrypted('complaints.complainant_name'),
    complainant_contact_ciphertext: encrypted('complaints.complainant_contact'),
    category: STATE,
    details_ciphertext: encrypted('complaints.details'),
    status: STATE,
    resolution_notes_ciphertext: encrypted('complaints.resolution_notes'),
    appeal_notes_ciphertext: encrypted('complaints.appeal_notes'),
  },
  complaint_transitions: {
    from_status: STATE,
    to_status: STATE,
    notes_ciphertext: encrypted('complaint_transitions.notes'),
  },
  withdrawals: {
    initiated_by: STATE,
    last_date_source: STATE,
    reason_ciphertext: encrypted('withdrawals.reason'),
    kind: STATE,
    enrollment_status_before: STATE,
  },
  ledger_entries: {
    kind: STATE,
    category: STATE,
    direction: STATE,
    reference: none("a check number or a payment processor's reference: a code (CHECK constraint), never free text"),
  },
  ledger_entry_memos: { memo_ciphertext: encrypted('ledger_entry_memos.memo') },
  idempotency_keys: {
    scope: STATE,
    key: none("a client's random retry key"),
    request_hash: hashed('the SHA-256 of a request body'),
    response_ciphertext: encrypted('idempotency_keys.response'),
  },
  refund_rules: {
    id: none('the name of a published refund rule'),
    jurisdiction: STATE,
    source: none('the citation of a published refund rule'),
    rule: none("a published refund rule's parameters, the same for every student"),
  },
  refunds: {
    rule_id: none('the name of a published refund rule'),
    inputs: none(
      "amounts, dates and hours keyed by the row's user_id, no names or free text (lib/refunds.ts builds it)",
    ),
    basis: STATE,
    explanation: none('a sentence built from the rule and the amounts (lib/refund-rules.ts), no names'),
    status: STATE,
    remittance_reference: none("a check number or a payment processor's reference (CHECK constraint)"),
    payee: STATE,
  },
  refund_overrides: {
    reason_ciphertext: encrypted('refund_overrides.reason'),
  },
  refund_approval_reversals: {
    payee: STATE,
    reason_ciphertext: encrypted('refund_approval_reversals.reason'),
  },
  refund_due_notices: { level: STATE },
  lrs_credentials: {
    key: none('a random public key id of an LRS credential (lib/xapi-credentials.ts)'),
    secret_sha256: hashed('the high-entropy secret of an LRS credential'),
    label: none('what an admin calls a tool or a course package that reports statements ("Storyline CPR")'),
    scopes: STATE,
  },
  xapi_statements: {
    authority_hash: { kind: 'blind-index', of: "the authority agent's inverse functional identifier" },
    content_sha256: hashed('the canonical JSON of a statement, to refuse a changed re-post'),
    statement_ciphertext: encrypted('xapi_statements.statement'),
    attachment_sha2: hashed('the content of an attachment (its xAPI SHA-2)'),
  },
  xapi_statement_index: {
    hash: { kind: 'blind-index', of: "an agent's identifier, an activity, verb or registration of a statement" },
  },
  xapi_attachments: {
    sha2: hashed('the content of an attachment (its xAPI SHA-2)'),
    content_type: none('the media type of an attachment'),
  },
  xapi_activities: {
    id_hash: { kind: 'blind-index', of: 'the activity IRI' },
    activity_id: none("an activity's IRI: course content (a module, a question), the same for every learner"),
    definition: none("an activity's definition: course content (names, descriptions, choices), not a learner's"),
  },
  xapi_documents: {
    key_hash: { kind: 'blind-index', of: 'the resource, activity, agent, registration and document id' },
    set_hash: { kind: 'blind-index', of: 'the resource, activity, agent and registration' },
    resource: STATE,
    document_id_ciphertext: encrypted('xapi_documents.document_id'),
    content_ciphertext: encrypted('xapi_documents.content'),
    content_type: none('the media type of a document'),
    etag: hashed('the content of a document (SHA-1, as xAPI names ETags)'),
  },
  stored_files: {
    purpose: none('what a file is, from the code that stores it (agreement-sealed)'),
    shelf: STATE,
    object_name: none('the purpose, a random id and a key id'),
    key_id: none('the id of the key that encrypted the object'),
    sha256: SHA256,
    content_type: STATE,
  },
  document_templates: {
    name: TEMPLATE,
    version: TEMPLATE,
    description: TEMPLATE,
    content: TEMPLATE,
    storage_ref: TEMPLATE,
    schema: TEMPLATE,
    content_type: STATE,
    sha256: SHA256,
  },
  leads: {
    first_name_ciphertext: encrypted('leads.first_name'),
    last_name_ciphertext: encrypted('leads.last_name'),
    email_ciphertext: encrypted('leads.email'),
    email_blind_index: { kind: 'blind-index', of: 'the normalised email' },
    phone_ciphertext: encrypted('leads.phone'),
    status: STATE,
  },
  signed_documents: {
    status: STATE,
    course_type: STATE,
    form_data_ciphertext: encrypted('signed_documents.form_data'),
    void_reason_ciphertext: encrypted('signed_documents.void_reason'),
    consent_version: none('the version of the ESIGN disclosure the signer accepted'),
    content_sha256: SHA256,
  },
  document_signatures: {
    signature_type: STATE,
    signature_ciphertext: encrypted('document_signatures.signature'),
    typed_name_ciphertext: encrypted('document_signatures.typed_name'),
    user_agent: USER_AGENT,
  },
  document_events: {
    event_type: STATE,
    details: none(
      'ids and versions only (lib/agreements.ts recordEvent): a file id, a template id, a disclosure version',
    ),
    user_agent: USER_AGENT,
  },
};

export interface DeclaredColumn {
  table: string;
  column: string;
  protection: Protection;
}

/** Every declared column, legacy plaintext columns included (declared through their replacement). */
export function declaredColumns(): DeclaredColumn[] {
  return Object.entries(PERSONAL_DATA).flatMap(([table, columns]) =>
    Object.entries(columns).flatMap(([column, protection]) => {
      const declared: DeclaredColumn[] = [{ table, column, protection }];
      if (protection.kind === 'encrypted' && protection.legacyPlaintext) {
        declared.push({
          table,
          column: protection.legacyPlaintext,
          protection: { kind: 'legacy-plaintext', encryptedInto: column },
        });
      }
      return declared;
    }),
  );
}

export interface EncryptedColumn {
  table: string;
  column: string;
  field: PiiField;
  legacyPlaintext?: string;
}

/** The columns keys:rotate re-encrypts, table by table. */
export function encryptedColumns(): EncryptedColumn[] {
  return declaredColumns().flatMap(({ table, column, protection }) =>
    protection.kind === 'encrypted'
      ? [
          {
            table,
            column,
            field: protection.field,
            ...(protection.legacyPlaintext ? { legacyPlaintext: protection.legacyPlaintext } : {}),
          },
        ]
      : [],
  );
}
