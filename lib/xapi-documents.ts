// The document resources of xAPI (Communication §2.3, §2.6, §2.7): State (activity + agent [+ registration]),
// Activity Profile (activity) and Agent Profile (agent), each holding documents by id. A document is stored
// encrypted with its content type; its ETag is the SHA-1 of its bytes. PUT replaces (If-Match / If-None-Match
// are honoured: 412; a PUT over an existing document without either is a 409 for profiles, and in 2.0 for
// State too), POST merges JSON objects one level deep (400 when either side is not a JSON object), DELETE
// removes one document (or, for State, all of the set). Documents are found by blind indexes of their set and
// id (lib/xapi-index.ts documentHashes): neither the agent nor the document id is readable at rest.
import { createHash } from 'node:crypto';
import { decrypt, decryptBytes, encrypt, encryptBytes } from './crypto';
import type { AnySql } from './db';
import { conflict, forbidden, HttpError, notFound } from './errors';
import type { Reply } from './http';
import type { LrsClient } from './xapi-auth';
import { agentHash, documentHashes } from './xapi-index';
import { onlyParameters, parameter, parseJson, type XapiRequest, xapiBadRequest } from './xapi-protocol';
import { agentIssues, isIri, isTimestamp, isUuid } from './xapi-validation';

export type DocumentResource = 'state' | 'activity_profile' | 'agent_profile';

const CONTENT_FIELD = 'xapi_documents.content';
const ID_FIELD = 'xapi_documents.document_id';
const MAX_DOCUMENT_BYTES = 1024 * 1024;

interface Shape {
  idName: 'stateId' | 'profileId';
  activity: boolean;
  agent: boolean;
  registration: boolean;
}

const SHAPES: Record<DocumentResource, Shape> = {
  state: { idName: 'stateId', activity: true, agent: true, registration: true },
  activity_profile: { idName: 'profileId', activity: true, agent: false, registration: false },
  agent_profile: { idName: 'profileId', activity: false, agent: true, registration: false },
};

interface Target {
  setHash: Buffer;
  keyHash: Buffer | null;
  documentId: string | undefined;
  since: string | undefined;
}

const preconditionFailed = (detail: string) =>
  new HttpError({ status: 412, slug: 'precondition-failed', title: 'Precondition failed', detail });

/** The resource's parameters, checked: the set and (when given) the document they name. */
function targetOf(resource: DocumentResource, request: XapiRequest, client: LrsClient): Target {
  const shape = SHAPES[resource];
  const allowed = [
    shape.idName,
    ...(shape.activity ? ['activityId'] : []),
    ...(shape.agent ? ['agent'] : []),
    ...(shape.registration ? ['registration'] : []),
    ...(request.method === 'GET' || request.method === 'HEAD' ? ['since'] : []),
  ];
  onlyParameters(request, allowed);
  const activityId = shape.activity ? parameter(request, 'activityId') : undefined;
  if (shape.activity && (activityId === undefined || !isIri(activityId))) {
    throw xapiBadRequest('activityId is required, an IRI', 'activityId');
  }
  let agent: Buffer | undefined;
  if (shape.agent) {
    const text = parameter(request, 'agent');
    if (text === undefined) throw xapiBadRequest('agent is required', 'agent');
    const parsed = parseJson(text, 'agent');
    const issues = agentIssues(parsed, request.version);
    if (issues.length > 0) throw xapiBadRequest(`agent: ${issues[0]?.message}`, 'agent');
    agent = agentHash(parsed as Record<string, unknown>) as Buffer;
    if (client.ownAgent && !agent.equals(client.ownAgent)) throw forbidden('These are documents of another learner');
  }
  const registration = shape.registration ? parameter(request, 'registration') : undefined;
  if (registration !== undefined && !isUuid(registration))
    throw xapiBadRequest('registration must be a UUID', 'registration');
  const documentId = parameter(request, shape.idName);
  const since = parameter(request, 'since');
  if (since !== undefined && (documentId !== undefined || !isTimestamp(since) || Number.isNaN(Date.parse(since)))) {
    throw xapiBadRequest('since is a timestamp, for a list of ids', 'since');
  }
  const { setHash, keyHash } = documentHashes(resource, { activityId, agent, registration }, documentId);
  return { setHash, keyHash, documentId, since };
}

interface StoredDocument {
  content: Buffer;
  contentType: string;
  etag: string;
  updated: Date;
}

async function findDocument(sql: AnySql, keyHash: Buffer, lock: boolean): Promise<StoredDocument | null> {
  const rows = await sql<{ content_ciphertext: Buffer; content_type: string; etag: string; updated: Date }[]>`
    select content_ciphertext, content_type, etag, updated from xapi_documents where key_hash = ${keyHash}
    ${lock ? sql`for update` : sql``}`;
  const row = rows[0];
  if (!row) return null;
  return {
    content: decryptBytes(row.content_ciphertext, CONTENT_FIELD),
    contentType: row.content_type,
    etag: row.etag,
    updated: row.updated,
  };
}

const isJsonType = (type: string) => /^application\/json\s*(?:;|$)/i.test(type);
const etagOf = (content: Buffer) => createHash('sha1').update(content).digest('hex');
const tagsOf = (header: string) => header.split(',').map((tag) => tag.trim().replace(/^W\//, '').replace(/^"|"$/g, ''));

/** If-Match / If-None-Match (412), and the 409 for a write over a document without either. */
function checkPreconditions(resource: DocumentResource, request: XapiRequest, existing: StoredDocument | null): void {
  const ifMatch = request.headers.get('if-match');
  const ifNoneMatch = request.headers.get('if-none-match');
  if (ifMatch !== undefined) {
    const tags = tagsOf(ifMatch);
    if (!existing || !(tags.includes('*') || tags.includes(existing.etag)))
      throw preconditionFailed('If-Match does not match the document');
  }
  if (ifNoneMatch !== undefined && existing) {
    const tags = tagsOf(ifNoneMatch);
    if (tags.includes('*') || tags.includes(existing.etag))
      throw preconditionFailed('If-None-Match matches the document');
  }
  if (request.method !== 'PUT' || ifMatch !== undefined || ifNoneMatch !== undefined) return;
  // A profile is only ever PUT with a precondition; State too in 2.0, once it exists.
  if (existing && (resource !== 'state' || request.version === '2.0.0')) {
    throw conflict('The document exists: send If-Match with its ETag to change it');
  }
  if (!existing && resource !== 'state') {
    throw xapiBadRequest('PUT a profile with If-Match (its ETag) or If-None-Match: * (a new one)', 'If-Match');
  }
}

function bodyOf(request: XapiRequest): { content: Buffer; contentType: string } {
  const content = request.body ?? Buffer.alloc(0);
  if (content.length > MAX_DOCUMENT_BYTES) throw xapiBadRequest('A document is at most 1 MB', 'body');
  const contentType = (request.headers.get('content-type') ?? 'application/octet-stream').slice(0, 200);
  if (isJsonType(contentType)) parseJson(content, 'body');
  return { content, contentType };
}

async function saveDocument(
  sql: AnySql,
  resource: DocumentResource,
  target: Target,
  document: { content: Buffer; contentType: string },
): Promise<void> {
  const etag = etagOf(document.content);
  await sql`
    insert into xapi_documents (key_hash, set_hash, resource, document_id_ciphertext, content_ciphertext, content_type,
                                etag, updated)
    values (${target.keyHash}, ${target.setHash}, ${resource}, ${encrypt(target.documentId as string, ID_FIELD)},
            ${encryptBytes(document.content, CONTENT_FIELD)}, ${document.contentType}, ${etag}, clock_timestamp())
    on conflict (key_hash) do update
       set content_ciphertext = excluded.content_ciphertext, content_type = excluded.content_type,
           etag = excluded.etag, updated = excluded.updated`;
}

function mergeJson(existing: StoredDocument, incoming: { content: Buffer; contentType: string }): Buffer {
  if (!isJsonType(existing.contentType) || !isJsonType(incoming.contentType)) {
    throw xapiBadRequest('POST merges JSON documents: both must be application/json', 'Content-Type');
  }
  const before = parseJson(existing.content, 'document');
  const after = parseJson(incoming.content, 'body');
  const isObject = (value: unknown) => typeof value === 'object' && value !== null && !Array.isArray(value);
  if (!isObject(before) || !isObject(after)) throw xapiBadRequest('POST merges JSON objects', 'body');
  return Buffer.from(JSON.stringify({ ...(before as object), ...(after as object) }));
}

/** PUT or POST of one document. */
export async function writeDocument(
  sql: AnySql,
  resource: DocumentResource,
  request: XapiRequest,
  client: LrsClient,
): Promise<Reply> {
  const target = targetOf(resource, request, client);
  if (!target.keyHash) throw xapiBadRequest(`${SHAPES[resource].idName} is required`, SHAPES[resource].idName);
  const incoming = bodyOf(request);
  const existing = await findDocument(sql, target.keyHash, true);
  checkPreconditions(resource, request, existing);
  if (request.method === 'POST' && existing) {
    await saveDocument(sql, resource, target, {
      content: mergeJson(existing, incoming),
      contentType: existing.contentType,
    });
  } else {
    if (request.method === 'POST' && isJsonType(incoming.contentType)) {
      const parsed = parseJson(incoming.content, 'body');
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
        throw xapiBadRequest('A JSON document sent by POST is an object', 'body');
      }
    }
    await saveDocument(sql, resource, target, incoming);
  }
  return { kind: 'empty', status: 204 };
}

/** GET (or HEAD) of one document, or of the ids of the set. */
export async function readDocuments(
  sql: AnySql,
  resource: DocumentResource,
  request: XapiRequest,
  client: LrsClient,
): Promise<Reply> {
  const target = targetOf(resource, request, client);
  if (target.keyHash) {
    const found = await findDocument(sql, target.keyHash, false);
    if (!found) throw notFound('No such document');
    return {
      kind: 'bytes',
      status: 200,
      body: found.content,
      contentType: found.contentType,
      headers: { ETag: `"${found.etag}"`, 'Last-Modified': found.updated.toUTCString() },
    };
  }
  const rows = await sql<{ document_id_ciphertext: string; updated: Date }[]>`
    select document_id_ciphertext, updated from xapi_documents
     where set_hash = ${target.setHash} ${target.since ? sql`and updated > ${target.since}::timestamptz` : sql``}
     order by updated, key_hash
     limit 10000`;
  const latest = rows.reduce((max, row) => Math.max(max, row.updated.getTime()), 0);
  return {
    kind: 'json',
    status: 200,
    body: rows.map((row) => decrypt(row.document_id_ciphertext, ID_FIELD)),
    headers: latest ? { 'Last-Modified': new Date(latest).toUTCString() } : {},
  };
}

/** DELETE of one document, or (State only) of every document of the set. */
export async function deleteDocuments(
  sql: AnySql,
  resource: DocumentResource,
  request: XapiRequest,
  client: LrsClient,
): Promise<Reply> {
  const target = targetOf(resource, request, client);
  if (target.keyHash) {
    const existing = await findDocument(sql, target.keyHash, true);
    if (request.headers.has('if-match') || request.headers.has('if-none-match'))
      checkPreconditions(resource, request, existing);
    await sql`delete from xapi_documents where key_hash = ${target.keyHash}`;
  } else {
    if (resource !== 'state') throw xapiBadRequest('profileId is required', 'profileId');
    await sql`delete from xapi_documents where set_hash = ${target.setHash}`;
  }
  return { kind: 'empty', status: 204 };
}
