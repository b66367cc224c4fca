// Credentials (certificates) as they are stored and shown, and the query of the credential list.
// Shared by functions/credentials.ts (issue, list, revoke).

import { decrypt } from './crypto';
import type { AnySql } from './db';
import { declareConstraints } from './errors';
import { keyset } from './pagination';

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

/** One page of credentials (`limit + 1` rows, see pageOf), with their programme's code and name. */
export function credentialPageQuery(
  sql: AnySql,
  filter: CredentialFilter,
  after: readonly [string, string] | undefined,
  limit: number,
) {
  return sql<(CredentialRow & { page_key: string[] })[]>`
    select c.*, p.code as program_code, p.name as program_name, ${CREDENTIAL_ORDER.key(sql)}
      from credentials c
      join programs p on p.id = c.program_id
     where ${CREDENTIAL_ORDER.after(sql, after)}
           ${filter.studentId ? sql`and c.user_id = ${filter.studentId}` : sql``}
           ${filter.programId ? sql`and c.program_id = ${filter.programId}` : sql``}
     ${CREDENTIAL_ORDER.orderBy(sql)}
     limit ${limit + 1}`;
}
