// Credentials (certificates) earned by completing a programme: the issue rule and its statement,
// revocation, who sees which credential, the list query and the view. Shared by
// functions/credentials.ts (issue, list, revoke).
//
// Issued only when EVERY module of the programme is complete (completed or passed) in the student's
// latest enrollment; a module without a progress row counts as incomplete (it has not been done). One
// live credential per student and programme (a partial unique index), each with a unique serial. A
// credential is revoked with a reason, never deleted; once revoked, a new one may be issued (the
// revoked one stays on record). The reason is free text about a student: stored encrypted
// (revoke_reason_ciphertext; revoke_reason is plaintext from before migration 0008, until keys:rotate
// encrypts it).
import { randomBytes } from 'node:crypto';
import type postgres from 'postgres';
import { type Caller, type RecordReach, type RecordScope, type Role, recordVisibleSql, scopeOf } from './access';
import { decrypt, encrypt } from './crypto';
import type { AnySql } from './db';
import { conflict, declareConstraints, notFound, serviceUnavailable } from './errors';
import { keyset } from './pagination';

/** Who issues credentials; they, and admins, read every student's (decision 2 of docs/access-policy.md). */
export const CREDENTIAL_ISSUERS: readonly Role[] = ['registrar', 'admin'];

/** Every credential for the issuers; a student their own; no instructor reach. */
export const CREDENTIAL_REACH: RecordReach = { all: CREDENTIAL_ISSUERS, taught: false };

/** The credentials the caller reaches. */
export const credentialScopeOf = (caller: Caller): RecordScope => scopeOf(caller, CREDENTIAL_REACH);

/** Condition on a credential aliased `c`: may the scope see it? */
function credentialVisible(sql: AnySql, scope: RecordScope): postgres.Fragment {
  return recordVisibleSql(sql, scope, { owner: sql`c.user_id`, program: sql`c.program_id` });
}

declareConstraints({
  // The partial unique index that allows one live (unrevoked) credential per student and programme.
  credentials_one_live_per_program: {
    status: 409,
    field: 'body.programId',
    message: 'This student already holds a credential for this programme (revoke it to reissue)',
  },
});

export interface CredentialRow {
  id: string;
  user_id: string;
  program_id: string;
  program_code: string;
  program_name: string;
  credential_type: string;
  cert_serial: string;
  issued_at: Date | string;
  issued_by: string | null;
  revoked_at: Date | string | null;
  revoked_by: string | null;
  revoke_reason_ciphertext: string | null;
  /** Legacy plaintext (before 0008). */
  revoke_reason: string | null;
}

const iso = (value: Date | string | null) => (value === null ? null : new Date(value).toISOString());

export const toCredential = (row: CredentialRow) => ({
  id: row.id,
  studentId: row.user_id,
  programId: row.program_id,
  program: { code: row.program_code, name: row.program_name },
  credentialType: row.credential_type,
  serial: row.cert_serial,
  issuedAt: iso(row.issued_at),
  issuedBy: row.issued_by,
  revokedAt: iso(row.revoked_at),
  revokedBy: row.revoked_by,
  revokeReason: row.revoke_reason_ciphertext
    ? decrypt(row.revoke_reason_ciphertext, 'credentials.revoke_reason')
    : row.revoke_reason,
});

/**
 * Newest first, stable under inserts. Served by idx_credentials_issued, or idx_credentials_user_issued
 * for one student (migration 0004).
 */
export const CREDENTIAL_ORDER = keyset(
  [
    ['c.issued_at', 'time'],
    ['c.id', 'uuid'],
  ],
  'desc',
);

export interface CredentialFilter {
  studentId?: string | undefined;
  programId?: string | undefined;
}

/**
 * One page of the credentials the scope sees (`limit + 1` rows, see pageOf), with their programme's
 * code and name.
 */
export function credentialPageQuery(
  sql: AnySql,
  filter: CredentialFilter,
  scope: RecordScope,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  return sql<(CredentialRow & { page_key: string[] })[]>`
    select c.*, p.code as program_code, p.name as program_name, ${CREDENTIAL_ORDER.key(sql)}
      from credentials c
      join programs p on p.id = c.program_id
     where ${credentialVisible(sql, scope)}
       and ${CREDENTIAL_ORDER.after(sql, after)}
           ${filter.studentId ? sql`and c.user_id = ${filter.studentId}` : sql``}
           ${filter.programId ? sql`and c.program_id = ${filter.programId}` : sql``}
     ${CREDENTIAL_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}

// ---------------------------------------------------------------------------------------------------
// Issue and revoke
// ---------------------------------------------------------------------------------------------------

const SERIAL_ATTEMPTS = 5;

/** Crockford's base32: no I, L, O or U, so a serial read aloud or typed is not misread. */
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** `AADA-<year>-<8 random base32 characters>`: 40 random bits, unique by constraint. */
function newSerial(year: number): string {
  let bits = BigInt(`0x${randomBytes(5).toString('hex')}`);
  let chars = '';
  for (let i = 0; i < 8; i++) {
    chars = CROCKFORD[Number(bits & 31n)] + chars;
    bits >>= 5n;
  }
  return `AADA-${year}-${chars}`;
}

export interface NewCredential {
  studentId: string;
  programId: string;
  /** Defaults to the programme's credential level. */
  credentialType?: string | undefined;
}

interface IssueOutcome {
  enrollment_status: string | null;
  module_count: number;
  incomplete: string[] | null;
  credential: CredentialRow | null;
}

/**
 * One statement: the latest enrollment, the modules not complete in it, and the insert, which happens
 * only when the rule holds. A serial that collides inserts nothing (the caller retries with another);
 * a second live credential for the same student and programme violates credentials_one_live_per_program
 * (declared above, so the wrapper answers 409).
 */
async function tryIssue(
  sql: AnySql,
  input: NewCredential,
  issuedBy: string,
  serial: string,
): Promise<IssueOutcome | undefined> {
  const [outcome] = await sql<IssueOutcome[]>`
    with enrollment as (
      select id, status from enrollments
       where user_id = ${input.studentId} and program_id = ${input.programId}
       order by start_date desc, created_at desc
       limit 1),
    modules_state as (
      select m.code, m.position, coalesce(mp.status, 'not_started') as status
        from modules m
        left join module_progress mp on mp.module_id = m.id and mp.enrollment_id = (select id from enrollment)
       where m.program_id = ${input.programId}),
    issued as (
      insert into credentials (user_id, program_id, credential_type, cert_serial, issued_by)
      select ${input.studentId}, p.id, coalesce(${input.credentialType ?? null}::text, p.credential_level), ${serial},
             ${issuedBy}
        from programs p
       where p.id = ${input.programId}
         and exists (select 1 from enrollment where status not in ('withdrawn', 'cancelled'))
         and exists (select 1 from modules_state)
         and not exists (select 1 from modules_state where status not in ('completed', 'passed'))
      on conflict (cert_serial) do nothing
      returning *)
    select (select status from enrollment) as enrollment_status,
           (select count(*)::int from modules_state) as module_count,
           (select array_agg(code order by position) from modules_state
             where status not in ('completed', 'passed')) as incomplete,
           (select json_build_object('id', i.id, 'user_id', i.user_id, 'program_id', i.program_id,
                                     'program_code', p.code, 'program_name', p.name,
                                     'credential_type', i.credential_type, 'cert_serial', i.cert_serial,
                                     'issued_at', i.issued_at, 'issued_by', i.issued_by,
                                     'revoked_at', i.revoked_at, 'revoked_by', i.revoked_by,
                                     'revoke_reason', i.revoke_reason,
                                     'revoke_reason_ciphertext', i.revoke_reason_ciphertext)
              from issued i join programs p on p.id = i.program_id) as credential`;
  return outcome;
}

/** Why a credential was not issued, as the client should hear it. */
function refusal(outcome: IssueOutcome): Error | null {
  if (outcome.enrollment_status === null) return notFound('This student has no enrollment in this programme');
  if (['withdrawn', 'cancelled'].includes(outcome.enrollment_status)) {
    return conflict(`The student's enrollment in this programme is ${outcome.enrollment_status}`);
  }
  if (outcome.module_count === 0) return conflict('The programme has no modules to complete');
  if (outcome.incomplete?.length) {
    return conflict(`Modules not complete: ${outcome.incomplete.join(', ')}`);
  }
  return null;
}

/**
 * Issues a credential when the rule holds (else throws the 404 or 409 saying why), retrying a serial
 * that collides a few times (then 503).
 */
export async function issueCredential(sql: AnySql, input: NewCredential, issuedBy: string) {
  for (let attempt = 0; attempt < SERIAL_ATTEMPTS; attempt++) {
    const outcome = await tryIssue(sql, input, issuedBy, newSerial(new Date().getUTCFullYear()));
    if (!outcome) throw notFound('This student has no enrollment in this programme');
    const refused = refusal(outcome);
    if (refused) throw refused;
    if (outcome.credential) return toCredential(outcome.credential);
    // Eligible, but the serial was taken: try another.
  }
  throw serviceUnavailable('Could not allocate a unique serial; try again', 1);
}

/** Revokes a live credential with a reason (stored encrypted); 404 for none, 409 if already revoked. */
export async function revokeCredential(sql: AnySql, id: string, reason: string, revokedBy: string) {
  const [row] = await sql<(CredentialRow & { just_revoked: boolean })[]>`
    with revoked as (
      update credentials
         set revoked_at = now(), revoked_by = ${revokedBy}, revoke_reason_ciphertext = ${encrypt(reason, 'credentials.revoke_reason')}
       where id = ${id} and revoked_at is null
      returning *)
    select c.*, p.code as program_code, p.name as program_name, c.id in (select id from revoked) as just_revoked
      from (select * from revoked
            union all
            select * from credentials where id = ${id} and not exists (select 1 from revoked)) c
      join programs p on p.id = c.program_id`;
  if (!row) throw notFound('No such credential');
  if (!row.just_revoked) throw conflict('The credential is already revoked');
  return toCredential(row);
}
