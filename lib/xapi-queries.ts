// Reading statements: the filters of GET statements (agent, verb, activity, registration, related_activities,
// related_agents, since, until, limit, format, attachments, ascending), each served by an index scan of
// xapi_statement_index in key order; `more` links that page by keyset (the last key read, never an offset),
// sealed so no filter value (an agent's email) reaches a URL; and the formats and multipart answers.
//
// Why one file over 350 lines: the query's parsing, its sealed `more` link and the formats are one
// contract: a `more` link must reopen exactly the query, format and attachments choice first parsed.
import type postgres from 'postgres';
import { z } from 'zod';
import { decrypt, encrypt } from './crypto';
import type { AnySql } from './db';
import type { Reply } from './http';
import { keyset } from './pagination';
import { readAttachments } from './xapi-attachments';
import type { LrsClient } from './xapi-auth';
import { activityHash, agentHash, INDEX_KIND, type IndexKind, registrationHash, verbHash } from './xapi-index';
import {
  buildMultipart,
  onlyParameters,
  parameter,
  parseJson,
  type XapiRequest,
  xapiBadRequest,
} from './xapi-protocol';
import { firstKeyOf, readableSql, type StoredStatement, toStored } from './xapi-statements';
import { agentIssues, isIri, isTimestamp, isUuid } from './xapi-validation';

export const DEFAULT_LIMIT = 100;
export const MAX_LIMIT = 500;
const MORE_FIELD = 'xapi.more';

const QUERY_PARAMETERS = [
  'agent',
  'verb',
  'activity',
  'registration',
  'related_activities',
  'related_agents',
  'since',
  'until',
  'limit',
  'format',
  'attachments',
  'ascending',
  'more',
];

type Format = 'exact' | 'ids' | 'canonical';

/** A query as parsed: what the `more` link seals, so the next page asks exactly the same. */
interface StatementQuery {
  agent?: Record<string, unknown>;
  verb?: string;
  activity?: string;
  registration?: string;
  relatedActivities: boolean;
  relatedAgents: boolean;
  since?: string;
  until?: string;
  limit: number;
  format: Format;
  attachments: boolean;
  ascending: boolean;
  /** The last key read, for the next page. */
  after?: string;
}

function bool(request: XapiRequest, name: string): boolean {
  const value = parameter(request, name);
  if (value === undefined) return false;
  if (value !== 'true' && value !== 'false') throw xapiBadRequest(`${name} is true or false`, name);
  return value === 'true';
}

function parseQuery(request: XapiRequest): StatementQuery {
  onlyParameters(request, QUERY_PARAMETERS);
  const more = parameter(request, 'more');
  if (more !== undefined) return openMore(more);
  const query: StatementQuery = {
    relatedActivities: bool(request, 'related_activities'),
    relatedAgents: bool(request, 'related_agents'),
    attachments: bool(request, 'attachments'),
    ascending: bool(request, 'ascending'),
    limit: DEFAULT_LIMIT,
    format: 'exact',
  };
  const agent = parameter(request, 'agent');
  if (agent !== undefined) {
    const parsed = parseJson(agent, 'agent');
    const issues = agentIssues(parsed, request.version);
    if (issues.length > 0) throw xapiBadRequest(`agent: ${issues[0]?.message}`, 'agent');
    query.agent = parsed as Record<string, unknown>;
  }
  for (const name of ['verb', 'activity'] as const) {
    const value = parameter(request, name);
    if (value === undefined) continue;
    if (!isIri(value)) throw xapiBadRequest(`${name} must be an IRI`, name);
    query[name] = value;
  }
  const registration = parameter(request, 'registration');
  if (registration !== undefined) {
    if (!isUuid(registration)) throw xapiBadRequest('registration must be a UUID', 'registration');
    query.registration = registration;
  }
  for (const name of ['since', 'until'] as const) {
    const value = parameter(request, name);
    if (value === undefined) continue;
    if (!isTimestamp(value, '1.0.3') || Number.isNaN(Date.parse(value)))
      throw xapiBadRequest(`${name} must be a timestamp`, name);
    query[name] = value;
  }
  const limit = parameter(request, 'limit');
  if (limit !== undefined) {
    if (!/^\d{1,9}$/.test(limit)) throw xapiBadRequest('limit is a whole number', 'limit');
    query.limit = Number(limit) === 0 ? MAX_LIMIT : Math.min(Number(limit), MAX_LIMIT);
  }
  const format = parameter(request, 'format');
  if (format !== undefined) {
    if (!['exact', 'ids', 'canonical'].includes(format))
      throw xapiBadRequest('format is ids, exact or canonical', 'format');
    query.format = format as Format;
  }
  return query;
}

const SealedQuery = z.object({
  agent: z.record(z.string(), z.unknown()).optional(),
  verb: z.string().optional(),
  activity: z.string().optional(),
  registration: z.string().optional(),
  relatedActivities: z.boolean(),
  relatedAgents: z.boolean(),
  since: z.string().optional(),
  until: z.string().optional(),
  limit: z.number().int().min(1).max(MAX_LIMIT),
  format: z.enum(['exact', 'ids', 'canonical']),
  attachments: z.boolean(),
  ascending: z.boolean(),
  after: z.uuid(),
});

function openMore(more: string): StatementQuery {
  try {
    const parsed = SealedQuery.safeParse(JSON.parse(decrypt(more, MORE_FIELD)));
    if (parsed.success) return parsed.data as StatementQuery;
  } catch {
    // refused below
  }
  throw xapiBadRequest('Not a more link this LRS gave out', 'more');
}

/** The index rows a query's filters need: [kind, hash] each. */
function filtersOf(query: StatementQuery): [IndexKind, Buffer][] {
  const filters: [IndexKind, Buffer][] = [];
  // Most selective first: it drives the scan, the others are probes of the same primary key.
  if (query.registration) filters.push([INDEX_KIND.registration, registrationHash(query.registration)]);
  if (query.agent) {
    const hash = agentHash(query.agent) as Buffer;
    filters.push([query.relatedAgents ? INDEX_KIND.relatedAgent : INDEX_KIND.agent, hash]);
  }
  if (query.activity) {
    const kind = query.relatedActivities ? INDEX_KIND.relatedActivity : INDEX_KIND.activity;
    filters.push([kind, activityHash(query.activity)]);
  }
  if (query.verb) filters.push([INDEX_KIND.verb, verbHash(query.verb)]);
  return filters;
}

/** since (exclusive) and until (inclusive) on `stored`, as key bounds: stored is the key's millisecond. */
function keyRange(sql: AnySql, column: postgres.Fragment, query: StatementQuery): postgres.Fragment {
  const since = query.since
    ? sql`${column} >= ${firstKeyOf(Math.floor(Date.parse(query.since)) + 1)}::uuid`
    : sql`true`;
  const until = query.until ? sql`${column} < ${firstKeyOf(Math.floor(Date.parse(query.until)) + 1)}::uuid` : sql`true`;
  return sql`${since} and ${until}`;
}

export interface StatementPage {
  statements: StoredStatement[];
  more: string | null;
  query: StatementQuery;
}

/** One page of the statements a GET's filters match, newest first unless ascending. */
export async function queryStatements(sql: AnySql, request: XapiRequest, client: LrsClient): Promise<StatementPage> {
  const query = parseQuery(request);
  const filters = filtersOf(query);
  const direction = query.ascending ? 'asc' : 'desc';
  const [driver, ...probes] = filters;
  const column = driver ? 'i.key' : 's.key';
  const order = keyset([[column, 'uuid']], direction);
  const key = sql`${sql(column)}`;
  const probeSql = probes.map(
    ([kind, hash]) =>
      sql`and exists (select 1 from xapi_statement_index p where p.kind = ${kind} and p.hash = ${hash} and p.key = ${key})`,
  );
  const from = driver
    ? sql`xapi_statement_index i join xapi_statements s on s.key = i.key where i.kind = ${driver[0]} and i.hash = ${driver[1]}`
    : sql`xapi_statements s where true`;
  const rows = await sql<{ key: string; statement_ciphertext: string; attachment_sha2: string[] }[]>`
    select s.key::text, s.statement_ciphertext, s.attachment_sha2
      from ${from}
       and ${keyRange(sql, key, query)}
       and ${order.after(sql, query.after ? [query.after] : undefined)}
       and not s.voided
       and ${readableSql(sql, client, key)}
       ${probeSql.reduce((all, one) => sql`${all} ${one}`, sql``)}
     ${order.orderBy(sql)}
     limit ${query.limit + 1}`;
  const read = rows.slice(0, query.limit);
  const last = read[read.length - 1];
  const more =
    rows.length > query.limit && last
      ? `${request.path}?more=${encodeURIComponent(encrypt(JSON.stringify({ ...query, after: last.key }), MORE_FIELD))}`
      : null;
  return { statements: read.map(toStored), more, query };
}

// ---------------------------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value);

const IFI_KEYS = ['mbox', 'mbox_sha1sum', 'openid', 'account'];

function agentIds(agent: unknown): unknown {
  if (!isObj(agent)) return agent;
  const out: Obj = {};
  if (agent.objectType) out.objectType = agent.objectType;
  for (const key of IFI_KEYS) if (key in agent) out[key] = agent[key];
  const anonymous = !IFI_KEYS.some((key) => key in agent);
  if (anonymous && Array.isArray(agent.member)) out.member = agent.member.map(agentIds);
  return out;
}

function objectIds(object: unknown): unknown {
  if (!isObj(object)) return object;
  const type = object.objectType ?? 'Activity';
  if (type === 'Activity') return { id: object.id };
  if (type === 'Agent' || type === 'Group') return agentIds(object);
  if (type === 'SubStatement') return statementIds(object);
  return object;
}

function statementIds(statement: Obj): Obj {
  const out: Obj = { ...statement, actor: agentIds(statement.actor), object: objectIds(statement.object) };
  if (isObj(statement.verb)) out.verb = { id: statement.verb.id };
  if ('authority' in statement) out.authority = agentIds(statement.authority);
  if (isObj(statement.context)) {
    const context: Obj = { ...statement.context };
    if (context.instructor) context.instructor = agentIds(context.instructor);
    if (context.team) context.team = agentIds(context.team);
    if (isObj(context.contextActivities)) {
      context.contextActivities = Object.fromEntries(
        Object.entries(context.contextActivities).map(([k, list]) => [k, (list as unknown[]).map(objectIds)]),
      );
    }
    out.context = context;
  }
  return out;
}

/** Language maps cut to the best language of Accept-Language (else their first entry). */
function canonical(value: unknown, languages: readonly string[], inMap = false): unknown {
  if (Array.isArray(value)) return value.map((item) => canonical(item, languages));
  if (!isObj(value)) return value;
  const out: Obj = {};
  for (const [key, item] of Object.entries(value)) {
    if (key === 'extensions') out[key] = item;
    else if (['display', 'name', 'description'].includes(key) && isObj(item) && !inMap)
      out[key] = pickLanguage(item, languages);
    else out[key] = canonical(item, languages);
  }
  return out;
}

function pickLanguage(map: Obj, languages: readonly string[]): Obj {
  const tags = Object.keys(map);
  for (const wanted of languages) {
    const found =
      tags.find((tag) => tag.toLowerCase() === wanted) ??
      tags.find((tag) => tag.toLowerCase().startsWith(`${wanted}-`));
    if (found) return { [found]: map[found] };
  }
  const first = tags[0];
  return first === undefined ? {} : { [first]: map[first] };
}

function acceptedLanguages(request: XapiRequest): string[] {
  return (request.headers.get('accept-language') ?? '')
    .split(',')
    .map((part) => part.split(';')[0]?.trim().toLowerCase() ?? '')
    .filter((tag) => tag !== '' && tag !== '*');
}

function formatted(statement: Obj, format: Format, request: XapiRequest): Obj {
  if (format === 'ids') return statementIds(statement);
  if (format === 'canonical') return canonical(statement, acceptedLanguages(request)) as Obj;
  return statement;
}

function formatOf(request: XapiRequest): Format {
  const format = parameter(request, 'format') ?? 'exact';
  if (!['exact', 'ids', 'canonical'].includes(format))
    throw xapiBadRequest('format is ids, exact or canonical', 'format');
  return format as Format;
}

function wantsAttachments(request: XapiRequest): boolean {
  const value = parameter(request, 'attachments');
  if (value !== undefined && value !== 'true' && value !== 'false')
    throw xapiBadRequest('attachments is true or false', 'attachments');
  return value === 'true';
}

/**
 * Headers of every statement read: Consistent-Through (lib/xapi-statements.ts consistentThrough, taken before
 * the read) and Last-Modified (the newest `stored` of the answer, else that time).
 */
function readHeaders(statements: readonly StoredStatement[], through: Date): Record<string, string> {
  const latest = statements.reduce((max, s) => Math.max(max, Date.parse(String(s.statement.stored))), 0);
  return {
    'X-Experience-API-Consistent-Through': through.toISOString(),
    'Last-Modified': new Date(latest || through.getTime()).toUTCString(),
  };
}

async function withAttachments(
  sql: AnySql,
  body: unknown,
  statements: readonly StoredStatement[],
  headers: Record<string, string>,
): Promise<Reply> {
  const attachments = await readAttachments(
    sql,
    statements.flatMap((s) => s.attachmentSha2),
  );
  const multipart = buildMultipart(body, attachments);
  return { kind: 'bytes', status: 200, body: multipart.body, contentType: multipart.contentType, headers };
}

/** The answer to GET by statementId / voidedStatementId. */
export async function singleStatementReply(
  sql: AnySql,
  found: StoredStatement,
  request: XapiRequest,
  through: Date,
): Promise<Reply> {
  const body = formatted(found.statement, formatOf(request), request);
  const headers = readHeaders([found], through);
  if (wantsAttachments(request)) return withAttachments(sql, body, [found], headers);
  return { kind: 'json', status: 200, body, headers };
}

/** The answer to a filtered GET: a StatementResult. */
export async function statementsReply(
  sql: AnySql,
  page: StatementPage,
  request: XapiRequest,
  through: Date,
): Promise<Reply> {
  const body = {
    statements: page.statements.map((s) => formatted(s.statement, page.query.format, request)),
    more: page.more ?? '',
  };
  const headers = readHeaders(page.statements, through);
  if (page.query.attachments) return withAttachments(sql, body, page.statements, headers);
  return { kind: 'json', status: 200, body, headers };
}
