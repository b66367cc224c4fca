// The Statement Resource (xAPI Communication §2.1): PUT of one statement, POST of one or a batch (JSON, or
// multipart/mixed with attachments), GET of one by statementId / voidedStatementId or of a filtered page.
// Requests come as an XapiRequest (lib/xapi-protocol.ts) so the alternate syntax is already undone.
import type { AnySql } from './db';
import type { AuditNotes } from './endpoint';
import { notFound } from './errors';
import type { Reply } from './http';
import { readStatementBodies, storeAttachments } from './xapi-attachments';
import { type LrsClient, READ_STATEMENTS, requireScope } from './xapi-auth';
import { applyStatementsToProgress, type ProgressEffect } from './xapi-progress';
import { onlyParameters, parameter, type XapiRequest, xapiBadRequest } from './xapi-protocol';
import { queryStatements, singleStatementReply, statementsReply } from './xapi-queries';
import {
  checkOwnActor,
  checkOwnVoiding,
  consistentThrough,
  findStatement,
  markStatementWrite,
  type Prepared,
  prepareStatement,
  storeStatements,
} from './xapi-statements';
import { isUuid } from './xapi-validation';

/**
 * Stores prepared statements and applies them to module progress (lib/xapi-progress.ts), in the request's
 * transaction; the audit row, written in it too, names the module when one changed.
 */
async function storeAndApply(
  sql: AnySql,
  prepared: readonly Prepared[],
  client: LrsClient,
  audit: AuditNotes | undefined,
): Promise<void> {
  const stored = await storeStatements(sql, prepared);
  noteProgress(audit, await applyStatementsToProgress(sql, prepared, stored, client));
}

function noteProgress(audit: AuditNotes | undefined, effects: readonly ProgressEffect[]): void {
  if (!audit || effects.length === 0) return;
  audit.event = 'xapi_progress';
  const [only] = effects;
  if (only && effects.every((e) => e.enrollmentId === only.enrollmentId && e.moduleId === only.moduleId)) {
    audit.resourceIds.enrollmentId = only.enrollmentId;
    audit.resourceIds.moduleId = only.moduleId;
  }
}

/** PUT statements?statementId=: stores one statement under that id (204), or finds it stored alike. */
export async function putStatement(
  sql: AnySql,
  request: XapiRequest,
  client: LrsClient,
  audit?: AuditNotes,
): Promise<Reply> {
  requireScope(client, 'statements/write');
  onlyParameters(request, ['statementId']);
  const statementId = parameter(request, 'statementId');
  if (!statementId) throw xapiBadRequest('PUT needs the statementId parameter', 'statementId');
  if (!isUuid(statementId)) throw xapiBadRequest('statementId must be a UUID', 'statementId');
  const { statements, attachments } = await readStatementBodies(request, false);
  await markStatementWrite(sql);
  const statement = statements[0] as Record<string, unknown>;
  if (statement.id !== undefined && String(statement.id).toLowerCase() !== statementId.toLowerCase()) {
    throw xapiBadRequest('The statement id differs from statementId', 'statementId');
  }
  const prepared = prepareStatement({ ...statement, id: statementId }, client, request.version, attachments);
  checkOwnActor(client, [prepared]);
  await checkOwnVoiding(sql, client, [prepared]);
  await storeAttachments(sql, [prepared], attachments);
  await storeAndApply(sql, [prepared], client, audit);
  return { kind: 'empty', status: 204 };
}

/** POST statements: one statement or a batch, all stored or none; the ids in the batch's order. */
export async function postStatements(
  sql: AnySql,
  request: XapiRequest,
  client: LrsClient,
  audit?: AuditNotes,
): Promise<Reply> {
  requireScope(client, 'statements/write');
  onlyParameters(request, []);
  const { statements, attachments } = await readStatementBodies(request, true);
  await markStatementWrite(sql);
  const prepared = statements.map((statement) =>
    prepareStatement(statement as Record<string, unknown>, client, request.version, attachments),
  );
  checkOwnActor(client, prepared);
  await checkOwnVoiding(sql, client, prepared);
  await storeAttachments(sql, prepared, attachments);
  await storeAndApply(sql, prepared, client, audit);
  return { kind: 'json', status: 200, body: prepared.map((p) => p.id) };
}

const SINGLE_PARAMETERS = ['statementId', 'voidedStatementId', 'attachments', 'format'];

/** GET statements: one by id, or a page of the statements matching the filters. */
export async function getStatements(sql: AnySql, request: XapiRequest, client: LrsClient): Promise<Reply> {
  requireScope(client, ...READ_STATEMENTS);
  const statementId = parameter(request, 'statementId');
  const voidedId = parameter(request, 'voidedStatementId');
  // Before the read's query: a write committing between the two would otherwise be claimed as seen.
  const through = await consistentThrough(sql);
  if (statementId === undefined && voidedId === undefined)
    return statementsReply(sql, await queryStatements(sql, request, client), request, through);
  if (statementId !== undefined && voidedId !== undefined) {
    throw xapiBadRequest('Give statementId or voidedStatementId, not both', 'statementId');
  }
  for (const key of request.query.keys()) {
    if (!SINGLE_PARAMETERS.includes(key))
      throw xapiBadRequest(`${key.slice(0, 40)} cannot go with a statement id`, key.slice(0, 40));
  }
  const id = (statementId ?? voidedId) as string;
  if (!isUuid(id))
    throw xapiBadRequest('The statement id must be a UUID', statementId ? 'statementId' : 'voidedStatementId');
  const found = await findStatement(sql, id, voidedId !== undefined, client);
  if (!found) throw notFound('No such statement');
  return singleStatementReply(sql, found, request, through);
}
