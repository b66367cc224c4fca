// Statement bodies and their attachments (xAPI Data §2.4.11, Communication §1.5.2): a JSON body, or
// multipart/mixed whose first part is the statements and whose other parts are attachments, each named by
// its SHA-2 (X-Experience-API-Hash) and sent as binary. Every attachment without a fileUrl must come as a
// part, every part must be an attachment of the statements, and every part's bytes must have its SHA-2.
// Attachment bytes go to the files store (lib/files.ts, encrypted), one object per SHA-2, shared by every
// statement that carries the same bytes; xapi_attachments maps the SHA-2 to the file.
import { type AnySql, TEXT_ARRAY } from './db';
import { badRequest } from './errors';
import { readFile, storeFile } from './files';
import { parseJson, parseMultipart, sha2Matches, type XapiRequest, xapiBadRequest } from './xapi-protocol';
import { verifyStatementSignature } from './xapi-signature';
import type { Prepared } from './xapi-statements';
import { batchIssues, type Issue, SIGNATURE_USAGE } from './xapi-validation';

export interface AttachmentContent {
  contentType: string;
  content: Buffer;
}

/** The most bytes one attachment may have (the route's body limit bounds them all together). */
const MAX_ATTACHMENT_BYTES = 16 * 1024 * 1024;

type Obj = Record<string, unknown>;

function invalid(issues: Issue[]): never {
  const first = issues[0] as Issue;
  throw badRequest(
    `${first.path}: ${first.message}`,
    issues.slice(0, 20).map((issue) => ({ field: issue.path, message: issue.message })),
  );
}

function attachmentsOf(statements: readonly unknown[]): Obj[] {
  return statements.flatMap((statement) => {
    const attachments = (statement as Obj).attachments;
    return Array.isArray(attachments) ? (attachments as Obj[]) : [];
  });
}

/**
 * The statements of a PUT or POST body, validated, and its attachment parts by SHA-2. `batch`: a POST may
 * send an array; a PUT sends one statement.
 */
export async function readStatementBodies(
  request: XapiRequest,
  batch: boolean,
): Promise<{ statements: unknown[]; attachments: Map<string, AttachmentContent> }> {
  if (!request.body || request.body.length === 0) throw xapiBadRequest('Send the statement as the body', 'body');
  const type = request.headers.get('content-type') ?? '';
  const multipart = /^multipart\/mixed\s*;/i.test(type);
  let json: Buffer;
  let parts: { headers: Map<string, string>; body: Buffer }[] = [];
  if (multipart) {
    const [first, ...rest] = parseMultipart(request.body, type);
    if (!first || !/^application\/json\s*(?:;|$)/i.test(first.headers.get('content-type') ?? '')) {
      throw xapiBadRequest('The first part of a multipart body is the statements, as application/json', 'body');
    }
    json = first.body;
    parts = rest;
  } else if (/^application\/json\s*(?:;|$)/i.test(type) || type === '') {
    json = request.body;
  } else {
    throw xapiBadRequest('Send statements as application/json or multipart/mixed', 'Content-Type');
  }
  const body = parseJson(json, 'body');
  if (!batch && Array.isArray(body)) throw xapiBadRequest('PUT stores one statement, not an array', 'body');
  const issues = batchIssues(body, request.version);
  if (issues.length > 0) invalid(issues);
  const statements = Array.isArray(body) ? body : [body];
  return { statements, attachments: checkParts(statements, parts) };
}

function checkParts(statements: readonly unknown[], parts: readonly { headers: Map<string, string>; body: Buffer }[]) {
  const declared = attachmentsOf(statements);
  const byHash = new Map<string, AttachmentContent>();
  for (const part of parts) {
    const sha2 = part.headers.get('x-experience-api-hash')?.toLowerCase();
    if (!sha2) throw xapiBadRequest('Every attachment part names its SHA-2 in X-Experience-API-Hash', 'body');
    if (part.headers.get('content-transfer-encoding')?.toLowerCase() !== 'binary') {
      throw xapiBadRequest('Attachment parts are sent with Content-Transfer-Encoding: binary', 'body');
    }
    if (!sha2Matches(sha2, part.body))
      throw xapiBadRequest('An attachment part does not have the SHA-2 it names', 'body');
    if (part.body.length > MAX_ATTACHMENT_BYTES) throw xapiBadRequest('An attachment is too large', 'body');
    if (!declared.some((attachment) => String(attachment.sha2).toLowerCase() === sha2)) {
      throw xapiBadRequest('An attachment part belongs to no attachment of the statements', 'body');
    }
    byHash.set(sha2, {
      contentType: part.headers.get('content-type') ?? 'application/octet-stream',
      content: part.body,
    });
  }
  for (const attachment of declared) {
    if (attachment.fileUrl === undefined && !byHash.has(String(attachment.sha2).toLowerCase())) {
      throw xapiBadRequest(
        'An attachment without a fileUrl must be sent as a part of a multipart/mixed body',
        'attachments',
      );
    }
  }
  for (const statement of statements) checkSignatures(statement as Obj, byHash);
  return byHash;
}

function checkSignatures(statement: Obj, parts: Map<string, AttachmentContent>): void {
  const attachments = Array.isArray(statement.attachments) ? (statement.attachments as Obj[]) : [];
  for (const attachment of attachments.filter((a) => a.usageType === SIGNATURE_USAGE)) {
    if (!/^application\/octet-stream\s*(?:;|$)/i.test(String(attachment.contentType))) {
      throw xapiBadRequest('A signature attachment is application/octet-stream', 'attachments');
    }
    const part = parts.get(String(attachment.sha2).toLowerCase());
    if (!part) throw xapiBadRequest('A signature attachment must be sent with the statement', 'attachments');
    verifyStatementSignature(statement, part.content);
  }
}

/** Stores the attachments the prepared statements carry and the store lacks (one file per SHA-2). */
export async function storeAttachments(
  sql: AnySql,
  prepared: readonly Prepared[],
  parts: Map<string, AttachmentContent>,
): Promise<void> {
  const needed = [...new Set(prepared.flatMap((p) => p.attachmentSha2))].filter((sha2) => parts.has(sha2));
  if (needed.length === 0) return;
  const have = await sql<
    { sha2: string }[]
  >`select sha2 from xapi_attachments where sha2 = any(${sql.array(needed, TEXT_ARRAY)})`;
  const present = new Set(have.map((row) => row.sha2));
  for (const sha2 of needed.filter((sha2) => !present.has(sha2))) {
    const part = parts.get(sha2) as AttachmentContent;
    const file = await storeFile(sql, {
      purpose: 'xapi-attachment',
      shelf: 'files',
      contentType: part.contentType,
      maxBytes: MAX_ATTACHMENT_BYTES,
      source: part.content,
    });
    await sql`
      insert into xapi_attachments (sha2, file_id, content_type) values (${sha2}, ${file.id}, ${part.contentType})
      on conflict (sha2) do nothing`;
  }
}

/** The stored bytes of these attachments, for a multipart answer (those the store has). */
export async function readAttachments(
  sql: AnySql,
  sha2s: readonly string[],
): Promise<{ sha2: string; contentType: string; content: Buffer }[]> {
  if (sha2s.length === 0) return [];
  const rows = await sql<{ sha2: string; file_id: string; content_type: string }[]>`
    select sha2, file_id, content_type from xapi_attachments where sha2 = any(${sql.array([...new Set(sha2s)], TEXT_ARRAY)})`;
  const found = await Promise.all(
    rows.map(async (row) => {
      const file = await readFile(sql, row.file_id);
      return file ? { sha2: row.sha2, contentType: row.content_type, content: file.content } : null;
    }),
  );
  return found.filter((item) => item !== null);
}
