// LRS credentials (lib/xapi-credentials.ts): admins create them (key and secret, the secret shown once, with
// xAPI scopes), list them and revoke them. Content and tools then call /api/xapi with HTTP Basic.
import { z } from 'zod';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { created, json } from '../lib/http';
import { limitSchema, nextLink } from '../lib/pagination';
import { singleLine } from '../lib/text';
import {
  CREDENTIAL_ORDER,
  createCredential,
  LRS_SCOPES,
  listCredentials,
  revokeCredential,
} from '../lib/xapi-credentials';

const NewCredential = z.strictObject({
  label: singleLine(200),
  scopes: z.array(z.enum(LRS_SCOPES)).min(1).max(LRS_SCOPES.length),
});

endpoint({
  name: 'lrs-credentials-create',
  methods: ['POST'],
  route: 'lrs-credentials',
  access: ['admin'],
  maxBodyBytes: 4 * 1024,
  body: NewCredential,
  handler: async function createLrsCredential({ sql, body, caller, audit }) {
    const credential = await createCredential(sql, body, caller.userId);
    audit.resourceIds.lrsCredentialId = credential.id;
    return created(credential, `/api/lrs-credentials/${credential.id}`);
  },
});

const ListQuery = z.object({ limit: limitSchema, cursor: CREDENTIAL_ORDER.cursor });

endpoint({
  name: 'lrs-credentials-list',
  methods: ['GET'],
  route: 'lrs-credentials',
  access: ['admin'],
  query: ListQuery,
  handler: async function listLrsCredentials({ sql, query, request }) {
    const page = await listCredentials(sql, query.limit, query.cursor);
    return json(page, 200, nextLink(request.url, page.next));
  },
});

const CredentialParams = z.object({ id: z.uuid() });

endpoint({
  name: 'lrs-credentials-revoke',
  methods: ['POST'],
  route: 'lrs-credentials/{id}/revoke',
  access: ['admin'],
  params: CredentialParams,
  handler: async function revokeLrsCredential({ sql, params, caller }) {
    const credential = await revokeCredential(sql, params.id, caller.userId);
    if (!credential) throw notFound('No such LRS credential');
    return json(credential);
  },
});
