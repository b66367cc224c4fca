// Credentials (certificates) earned by completing a programme. Issued by the registrar or an admin only
// when EVERY module of the programme is complete (completed or passed) in the student's latest
// enrollment; a module without a progress row counts as incomplete (it has not been done). One live
// credential per student and programme (a partial unique index),
// each with a unique serial. A credential is revoked by an admin with a reason, never deleted; once
// revoked, a new one may be issued (the revoked one stays on record). Education records: PHI routes.
// The reason is free text about a student: stored encrypted (revoke_reason_ciphertext; revoke_reason
// is plaintext from before migration 0008, until keys:rotate encrypts it).
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { type Caller, hasAnyRole, type Role } from '../lib/access';
import { CREDENTIAL_ORDER, type CredentialRow, credentialPageQuery, toCredential } from '../lib/credentials';
import { encrypt } from '../lib/crypto';
import type { TransactionSql } from '../lib/db';
import { endpoint } from '../lib/endpoint';
import { conflict, forbidden, notFound, serviceUnavailable } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { multiLine, singleLine } from '../lib/text';

const ISSUERS: readonly Role[] = ['registrar', 'admin'];
/** Who reads every student's credentials (decision 2 of docs/access-policy.md); a student reads their own. */
const ALL_CREDENTIALS_READERS = ISSUERS;
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

// ---------------------------------------------------------------------------------------------------
// Issue
// ---------------------------------------------------------------------------------------------------

const NewCredential = z.strictObject({
  studentId: z.uuid(),
  programId: z.uuid(),
  credentialType: singleLine(100).optional(),
});

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
 * (declared in lib/credentials.ts, so the wrapper answers 409).
 */
async function tryIssue(
  sql: TransactionSql,
  input: z.infer<typeof NewCredential>,
  issuer: Caller,
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
             ${issuer.userId}
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

endpoint({
  name: 'credentials-issue',
  methods: ['POST'],
  route: 'credentials',
  access: ISSUERS,
  phi: true,
  body: NewCredential,
  handler: async ({ sql, body, caller, audit }) => {
    for (let attempt = 0; attempt < SERIAL_ATTEMPTS; attempt++) {
      const outcome = await tryIssue(sql, body, caller, newSerial(new Date().getUTCFullYear()));
      if (!outcome) throw notFound('This student has no enrollment in this programme');
      const refused = refusal(outcome);
      if (refused) throw refused;
      if (outcome.credential) {
        audit.resourceIds.credentialId = outcome.credential.id;
        return created(toCredential(outcome.credential), `/api/credentials?studentId=${body.studentId}`);
      }
      // Eligible, but the serial was taken: try another.
    }
    throw serviceUnavailable('Could not allocate a unique serial; try again', 1);
  },
});

// ---------------------------------------------------------------------------------------------------
// List and revoke
// ---------------------------------------------------------------------------------------------------

const ListQuery = z.object({
  studentId: z.uuid().optional(),
  programId: z.uuid().optional(),
  limit: limitSchema,
  cursor: CREDENTIAL_ORDER.cursor,
});

endpoint({
  name: 'credentials-list',
  methods: ['GET'],
  route: 'credentials',
  access: ['student', ...ALL_CREDENTIALS_READERS],
  phi: true,
  query: ListQuery,
  handler: async ({ sql, query, caller, request }) => {
    let studentId = query.studentId;
    if (!hasAnyRole(caller, ALL_CREDENTIALS_READERS)) {
      if (studentId !== undefined && studentId !== caller.userId) {
        throw forbidden('You can list only your own credentials');
      }
      studentId = caller.userId;
    }
    const rows = await credentialPageQuery(sql, { studentId, programId: query.programId }, query.cursor, query.limit);
    const page = pageOf(rows, query.limit, (read) => read.map(toCredential));
    return json(page, 200, nextLink(request.url, page.next));
  },
});

const RevokeParams = z.object({ id: z.uuid() });
const Revocation = z.strictObject({ reason: multiLine(1000, { min: 3 }) });

endpoint({
  name: 'credentials-revoke',
  methods: ['POST'],
  route: 'credentials/{id}/revoke',
  access: ['admin'],
  phi: true,
  params: RevokeParams,
  body: Revocation,
  handler: async ({ sql, params, body, caller }) => {
    const [row] = await sql<(CredentialRow & { just_revoked: boolean })[]>`
      with revoked as (
        update credentials
           set revoked_at = now(), revoked_by = ${caller.userId}, revoke_reason_ciphertext = ${encrypt(body.reason, 'credentials.revoke_reason')}
         where id = ${params.id} and revoked_at is null
        returning *)
      select c.*, p.code as program_code, p.name as program_name, c.id in (select id from revoked) as just_revoked
        from (select * from revoked
              union all
              select * from credentials where id = ${params.id} and not exists (select 1 from revoked)) c
        join programs p on p.id = c.program_id`;
    if (!row) throw notFound('No such credential');
    if (!row.just_revoked) throw conflict('The credential is already revoked');
    return json(toCredential(row));
  },
});
