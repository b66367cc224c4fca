// Credentials (certificates): the routes that issue (registrar, admin), list (they, and a student
// their own) and revoke (admin) them. The issue rule, the queries and the view are lib/credentials.ts.
// Education records: PHI routes.
import { z } from 'zod';
import {
  CREDENTIAL_ISSUERS,
  CREDENTIAL_ORDER,
  credentialPageQuery,
  credentialScopeOf,
  issueCredential,
  revokeCredential,
  toCredential,
} from '../lib/credentials';
import { type ChangeInput, endpoint, type ReadInput } from '../lib/endpoint';
import { forbidden } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { multiLine, singleLine } from '../lib/text';

// ---------------------------------------------------------------------------------------------------
// Issue
// ---------------------------------------------------------------------------------------------------

const NewCredential = z.strictObject({
  studentId: z.uuid(),
  programId: z.uuid(),
  credentialType: singleLine(100).optional(),
});

async function issue({ sql, body, caller, audit }: ChangeInput<unknown, unknown, z.infer<typeof NewCredential>>) {
  const credential = await issueCredential(sql, body, caller.userId);
  audit.resourceIds.credentialId = credential.id;
  return created(credential, `/api/credentials?studentId=${body.studentId}`);
}

endpoint({
  name: 'credentials-issue',
  methods: ['POST'],
  route: 'credentials',
  access: CREDENTIAL_ISSUERS,
  phi: true,
  body: NewCredential,
  handler: issue,
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

async function listCredentials({ sql, query, caller, request }: ReadInput<unknown, z.infer<typeof ListQuery>>) {
  const scope = credentialScopeOf(caller);
  // Asking by name for someone else's is refused outright (the scope would only give an empty page).
  if (scope.kind === 'own' && query.studentId !== undefined && query.studentId !== scope.userId) {
    throw forbidden('You can list only your own credentials');
  }
  const rows = await credentialPageQuery(sql, query, scope, query.cursor, query.limit);
  const page = pageOf(rows, query.limit, (read) => read.map(toCredential));
  return json(page, 200, nextLink(request.url, page.next));
}

endpoint({
  name: 'credentials-list',
  methods: ['GET'],
  route: 'credentials',
  access: ['student', ...CREDENTIAL_ISSUERS],
  phi: true,
  query: ListQuery,
  handler: listCredentials,
});

const RevokeParams = z.object({ id: z.uuid() });
const Revocation = z.strictObject({ reason: multiLine(1000, { min: 3 }) });

async function revoke({
  sql,
  params,
  body,
  caller,
}: ChangeInput<z.infer<typeof RevokeParams>, unknown, z.infer<typeof Revocation>>) {
  return json(await revokeCredential(sql, params.id, body.reason, caller.userId));
}

endpoint({
  name: 'credentials-revoke',
  methods: ['POST'],
  route: 'credentials/{id}/revoke',
  access: ['admin'],
  phi: true,
  params: RevokeParams,
  body: Revocation,
  handler: revoke,
});
