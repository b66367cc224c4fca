// The Statement Resource's storage: statements prepared for storing (ids, stored, authority, version set by
// the LRS; their index rows), stored in one transaction with their link rows, voiding, the immutability of
// an id (the same id with other content is a 409), and what targeting statements inherit. A statement is
// stored encrypted; everything a filter needs is in xapi_statement_index (lib/xapi-index.ts).
//
// Why one file over 350 lines: preparing, storing, voiding and inheriting targets are one write path
// inside one transaction whose order matters (statements, then their index rows, then voiding and
// inheritance, then the activities); reading one statement stays beside it because it is the inverse
// of how a statement is stored.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import { decrypt, encrypt } from './crypto';
import { type AnySql, BYTEA_ARRAY, UUID_ARRAY } from './db';
import { badRequest, conflict, forbidden } from './errors';
import type { LrsClient } from './xapi-auth';
import { activityHash, agentHash, INDEX_KIND, type IndexKind, registrationHash, verbHash } from './xapi-index';
import { VOIDED_VERB, type XapiVersion } from './xapi-validation';

/** PostgreSQL's type oid of smallint[]. */
const INT2_ARRAY = 1005;

export const STATEMENT_FIELD = 'xapi_statements.statement';

export type Statement = Record<string, unknown> & { id: string };
type Obj = Record<string, unknown>;

export interface Prepared {
  key: string;
  id: string;
  stored: Date;
  statement: Statement;
  contentSha256: Buffer;
  index: [IndexKind, Buffer][];
  refTarget: string | null;
  voids: string | null;
  attachmentSha2: string[];
  activities: Map<string, Obj | undefined>;
}

// ---------------------------------------------------------------------------------------------------------
// Time-ordered keys (UUIDv7): 48 bits of milliseconds, a 12-bit counter within the millisecond, random bits
// ---------------------------------------------------------------------------------------------------------

let lastMs = 0;
let counter = 0;

/** A new key and the `stored` instant it encodes; keys of this process strictly increase. */
export function newKey(now = Date.now()): { key: string; stored: Date } {
  let ms = now;
  if (ms <= lastMs) {
    ms = lastMs;
    counter++;
    if (counter > 0xfff) {
      ms++;
      counter = 0;
    }
  } else counter = 0;
  lastMs = ms;
  return { key: keyAt(ms, counter, randomBytes(8)), stored: new Date(ms) };
}

function keyAt(ms: number, seq: number, tail: Buffer): string {
  const bytes = Buffer.alloc(16);
  bytes.writeUIntBE(ms, 0, 6);
  bytes.writeUInt16BE(0x7000 | (seq & 0xfff), 6);
  tail.copy(bytes, 8);
  bytes[8] = ((bytes[8] as number) & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The smallest key of a millisecond: since/until become ranges of keys. */
export function firstKeyOf(ms: number): string {
  return keyAt(Math.max(0, Math.min(ms, 2 ** 48 - 1)), 0, Buffer.alloc(8));
}

// ---------------------------------------------------------------------------------------------------------
// Preparing statements
// ---------------------------------------------------------------------------------------------------------

const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value);

/** JSON with keys sorted at every level: equal statements hash alike whatever their key order. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (isObj(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((key) => `${JSON.stringify(key)}:${canonicalJson(value[key])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** contextActivities' single activities become arrays (the form the LRS returns). */
function normalizeContext(statement: Obj): void {
  const context = statement.context;
  if (isObj(context) && isObj(context.contextActivities)) {
    for (const [key, value] of Object.entries(context.contextActivities)) {
      if (!Array.isArray(value)) context.contextActivities[key] = [value];
    }
  }
  if (isObj(statement.object) && statement.object.objectType === 'SubStatement') normalizeContext(statement.object);
}

/** What identifies a statement's content for the immutability check: everything but what the LRS sets. */
function contentHash(statement: Obj): Buffer {
  const { stored: _stored, authority: _authority, ...content } = statement;
  content.id = String(content.id).toLowerCase();
  return createHash('sha256').update(canonicalJson(content)).digest();
}

class IndexRows {
  readonly rows = new Map<string, [IndexKind, Buffer]>();
  add(kind: IndexKind, hash: Buffer | null): void {
    if (hash) this.rows.set(`${kind}:${hash.toString('hex')}`, [kind, hash]);
  }
  agent(agent: unknown, kinds: readonly IndexKind[]): void {
    if (!isObj(agent)) return;
    for (const kind of kinds) this.add(kind, agentHash(agent));
    if (Array.isArray(agent.member)) for (const member of agent.member) this.agent(member, [INDEX_KIND.relatedAgent]);
  }
}

/** Two definitions of one activity as one: the later's properties win, language maps are merged. */
export function mergeDefinitions(earlier: Obj | undefined, later: Obj | undefined): Obj | undefined {
  if (!earlier || !later) return later ?? earlier;
  const merged: Obj = { ...earlier, ...later };
  for (const key of ['name', 'description']) {
    if (isObj(earlier[key]) && isObj(later[key])) merged[key] = { ...(earlier[key] as Obj), ...(later[key] as Obj) };
  }
  return merged;
}

function activitiesOf(statement: Obj, found: Map<string, Obj | undefined>, index: IndexRows, top: boolean): void {
  const object = statement.object;
  const note = (activity: unknown, kinds: readonly IndexKind[]) => {
    if (!isObj(activity) || typeof activity.id !== 'string') return;
    for (const kind of kinds) index.add(kind, activityHash(activity.id));
    const definition = isObj(activity.definition) ? activity.definition : undefined;
    found.set(activity.id, mergeDefinitions(found.get(activity.id), definition));
  };
  if (isObj(object) && (object.objectType ?? 'Activity') === 'Activity') {
    note(object, top ? [INDEX_KIND.activity, INDEX_KIND.relatedActivity] : [INDEX_KIND.relatedActivity]);
  }
  const context = statement.context;
  if (isObj(context) && isObj(context.contextActivities)) {
    for (const list of Object.values(context.contextActivities)) {
      for (const activity of Array.isArray(list) ? list : [list]) note(activity, [INDEX_KIND.relatedActivity]);
    }
  }
}

function agentsOf(statement: Obj, index: IndexRows, top: boolean): void {
  const direct = top ? [INDEX_KIND.agent, INDEX_KIND.relatedAgent] : [INDEX_KIND.relatedAgent];
  index.agent(statement.actor, direct);
  const object = statement.object;
  if (isObj(object) && (object.objectType === 'Agent' || object.objectType === 'Group')) index.agent(object, direct);
  const context = statement.context;
  if (isObj(context)) {
    index.agent(context.instructor, [INDEX_KIND.relatedAgent]);
    index.agent(context.team, [INDEX_KIND.relatedAgent]);
    for (const entry of Array.isArray(context.contextAgents) ? context.contextAgents : []) {
      if (isObj(entry)) index.agent(entry.agent, [INDEX_KIND.relatedAgent]);
    }
    for (const entry of Array.isArray(context.contextGroups) ? context.contextGroups : []) {
      if (isObj(entry)) index.agent(entry.group, [INDEX_KIND.relatedAgent]);
    }
  }
}

/**
 * A valid statement as it will be stored: id (a new UUID when absent), stored, authority and version set by
 * the LRS, timestamp defaulting to stored, its index rows and activities, and the SHA-2 of the attachments
 * whose bytes came with it (`sent`: the request's parts). That is every attachment without a fileUrl, and
 * one with a fileUrl whose bytes the client sent as well: those are stored and come back under
 * attachments=true. A fileUrl alone never links a statement to bytes someone else sent.
 */
export function prepareStatement(
  input: Obj,
  client: LrsClient,
  version: XapiVersion,
  sent: ReadonlyMap<string, unknown> = new Map(),
): Prepared {
  const received = structuredClone(input);
  normalizeContext(received);
  if (typeof received.id !== 'string') received.id = randomUUID();
  received.id = (received.id as string).toLowerCase();
  const { key, stored } = newKey();
  const statement: Statement = {
    ...received,
    id: received.id as string,
    timestamp: received.timestamp ?? stored.toISOString(),
    stored: stored.toISOString(),
    authority: client.authority,
    version: received.version ?? (version === '2.0.0' ? '2.0.0' : '1.0.0'),
  };
  const index = new IndexRows();
  const activities = new Map<string, Obj | undefined>();
  agentsOf(statement, index, true);
  index.agent(statement.authority, [INDEX_KIND.relatedAgent]);
  activitiesOf(statement, activities, index, true);
  const verb = statement.verb as Obj;
  index.add(INDEX_KIND.verb, verbHash(String(verb.id)));
  const context = statement.context;
  if (isObj(context) && typeof context.registration === 'string') {
    index.add(INDEX_KIND.registration, registrationHash(context.registration));
  }
  const object = statement.object as Obj;
  if (object.objectType === 'SubStatement') {
    agentsOf(object, index, false);
    activitiesOf(object, activities, index, false);
  }
  const refTarget = object.objectType === 'StatementRef' ? String(object.id).toLowerCase() : null;
  const attachments = Array.isArray(statement.attachments) ? (statement.attachments as Obj[]) : [];
  return {
    key,
    id: statement.id,
    stored,
    statement,
    contentSha256: contentHash(received),
    index: [...index.rows.values()],
    refTarget,
    voids: verb.id === VOIDED_VERB ? refTarget : null,
    attachmentSha2: [...new Set(attachments.map((a) => String(a.sha2).toLowerCase()).filter((h) => sent.has(h)))],
    activities,
  };
}

/** A student writes only statements whose actor is themselves. */
export function checkOwnActor(client: LrsClient, statements: readonly Prepared[]): void {
  if (!client.ownAgent) return;
  for (const prepared of statements) {
    const actor = agentHash(prepared.statement.actor as Obj);
    if (!actor?.equals(client.ownAgent)) throw forbidden('You may only record statements about yourself');
  }
}

/**
 * A student voids only their own statements: the target must be in the batch or stored with them as its
 * actor. Otherwise a student could void (or, naming an id not stored yet, pre-void) another's statement.
 */
export async function checkOwnVoiding(sql: AnySql, client: LrsClient, statements: readonly Prepared[]): Promise<void> {
  if (!client.ownAgent) return;
  const inBatch = new Set(statements.map((prepared) => prepared.id));
  const targets = [...new Set(statements.flatMap((p) => (p.voids && !inBatch.has(p.voids) ? [p.voids] : [])))];
  if (targets.length === 0) return;
  const own = await sql<{ id: string }[]>`
    select s.id::text from xapi_statements s
     where s.id = any(${sql.array(targets, UUID_ARRAY)})
       and exists (select 1 from xapi_statement_index o
                    where o.kind = ${INDEX_KIND.agent} and o.hash = ${client.ownAgent} and o.key = s.key)`;
  if (own.length !== targets.length) throw forbidden('You may only void your own statements');
}

// ---------------------------------------------------------------------------------------------------------
// Storing
// ---------------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------------
// Consistent-Through (Communication §2.1.3): the time before which every statement is visible
// ---------------------------------------------------------------------------------------------------------

/**
 * The application_name a statement write gives its transaction (SET LOCAL: it reverts at commit), so that a
 * read on any instance sees, in pg_stat_activity, that the write is in flight.
 */
const STATEMENT_WRITE_MARK = 'aada-xapi-statement-write';

/**
 * Marks the caller's transaction as a statement write. Call it before the statements get their `stored`
 * time (prepareStatement): every stored time of the write is then at or after the transaction's start.
 */
export async function markStatementWrite(sql: AnySql): Promise<void> {
  await sql`select set_config('application_name', ${STATEMENT_WRITE_MARK}, true)`;
}

/**
 * The honest X-Experience-API-Consistent-Through of a read, taken before the read's query: now, or the start of
 * the oldest statement write still in flight on any instance if earlier. A write that has not committed
 * may store statements with a `stored` from its start on, and they may become visible after this read; a
 * write starting later stores later times. It assumes the instances' and the database's clocks agree (NTP);
 * `stored` comes from the instance.
 */
export async function consistentThrough(sql: AnySql): Promise<Date> {
  const [row] = await sql<{ through: Date }[]>`
    select least(clock_timestamp(),
                 (select min(xact_start) from pg_stat_activity
                   where application_name = ${STATEMENT_WRITE_MARK} and datname = current_database()
                     and pid <> pg_backend_pid())) as through`;
  return new Date(row?.through ?? Date.now());
}

/**
 * Stores prepared statements in the caller's transaction. An id stored before with the same content is
 * left as it is (its statement is not stored again); with other content the whole batch is a 409. Returns
 * the ids newly stored.
 */
export async function storeStatements(sql: AnySql, batch: readonly Prepared[]): Promise<Set<string>> {
  const ids = batch.map((prepared) => prepared.id);
  if (new Set(ids).size !== ids.length) throw badRequest('Two statements of the batch have the same id');
  const existing = await sql<{ id: string; content_sha256: Buffer }[]>`
    select id::text, content_sha256 from xapi_statements where id = any(${sql.array([...ids], UUID_ARRAY)})`;
  const known = new Map(existing.map((row) => [row.id, row.content_sha256]));
  for (const prepared of batch) {
    const stored = known.get(prepared.id);
    if (stored && !stored.equals(prepared.contentSha256)) {
      throw conflict(`Statement ${prepared.id} is stored already, with other content`);
    }
  }
  const fresh = batch.filter((prepared) => !known.has(prepared.id));
  if (fresh.length === 0) return new Set();
  const inserted = await insertStatements(sql, fresh);
  const stored = fresh.filter((prepared) => inserted.has(prepared.id));
  if (stored.length === 0) return inserted;
  await insertIndexRows(sql, stored);
  await applyVoiding(sql, stored);
  await inheritTargets(
    sql,
    stored.map((prepared) => prepared.id),
  );
  await upsertActivities(sql, stored);
  return inserted;
}

async function insertStatements(sql: AnySql, fresh: readonly Prepared[]): Promise<Set<string>> {
  const rows = fresh.map((prepared) => ({
    key: prepared.key,
    id: prepared.id,
    stored: prepared.stored.toISOString(),
    authority: agentHash(prepared.statement.authority as Obj)?.toString('hex'),
    content: prepared.contentSha256.toString('hex'),
    ciphertext: encrypt(JSON.stringify(prepared.statement), STATEMENT_FIELD),
    ref_target: prepared.refTarget,
    voids: prepared.voids,
    attachments: prepared.attachmentSha2,
  }));
  // A statement arriving after the statement that voids it is stored voided (a voiding statement never is).
  const inserted = await sql<{ id: string }[]>`
    insert into xapi_statements (key, id, stored, authority_hash, content_sha256, statement_ciphertext, ref_target,
                                 voids, voided, attachment_sha2)
    select r.key, r.id, r.stored, decode(r.authority, 'hex'), decode(r.content, 'hex'), r.ciphertext, r.ref_target,
           r.voids,
           r.voids is null and exists (select 1 from xapi_statements v where v.voids = r.id),
           array(select jsonb_array_elements_text(r.attachments))
      from jsonb_to_recordset(${sql.json(rows as unknown as postgres.JSONValue)}) as r(
             key uuid, id uuid, stored timestamptz, authority text, content text, ciphertext text, ref_target uuid,
             voids uuid, attachments jsonb)
    on conflict (id) do nothing
    returning id::text`;
  return new Set(inserted.map((row) => row.id));
}

async function insertIndexRows(sql: AnySql, stored: readonly Prepared[]): Promise<void> {
  const kinds: number[] = [];
  const hashes: Buffer[] = [];
  const keys: string[] = [];
  for (const prepared of stored) {
    for (const [kind, hash] of prepared.index) {
      kinds.push(kind);
      hashes.push(hash);
      keys.push(prepared.key);
    }
  }
  for (let start = 0; start < keys.length; start += 5000) {
    const end = start + 5000;
    await sql`
      insert into xapi_statement_index (kind, hash, key)
      select * from unnest(${sql.array(kinds.slice(start, end), INT2_ARRAY)}::smallint[],
                           ${sql.array(hashes.slice(start, end), BYTEA_ARRAY)}::bytea[],
                           ${sql.array(keys.slice(start, end), UUID_ARRAY)}::uuid[])
      on conflict do nothing`;
  }
}

/** Voids the targets of new voiding statements; a voiding statement cannot be voided (400). */
async function applyVoiding(sql: AnySql, stored: readonly Prepared[]): Promise<void> {
  const targets = stored.flatMap((prepared) => (prepared.voids ? [prepared.voids] : []));
  if (targets.length === 0) return;
  const voiding = await sql`
    select 1 from xapi_statements where id = any(${sql.array([...targets], UUID_ARRAY)}) and voids is not null limit 1`;
  if (voiding.length > 0) throw badRequest('A voiding statement cannot be voided');
  await sql`update xapi_statements set voided = true where id = any(${sql.array([...targets], UUID_ARRAY)}) and not voided`;
}

/**
 * A statement whose object is a StatementRef matches every filter (but time) its target matches, recursively
 * (Communication §2.1.3): it gets the index rows of every statement down its chain, and the statements up a
 * chain that reach a new statement get that statement's rows. The recursive unions stop on cycles.
 */
async function inheritTargets(sql: AnySql, ids: readonly string[]): Promise<void> {
  await sql`
    with recursive chain (referrer, target) as (
      select s.key, s.ref_target from xapi_statements s where s.id = any(${sql.array([...ids], UUID_ARRAY)}) and s.ref_target is not null
      union
      select c.referrer, t.ref_target from chain c join xapi_statements t on t.id = c.target where t.ref_target is not null
    )
    insert into xapi_statement_index (kind, hash, key)
    select i.kind, i.hash, c.referrer
      from chain c join xapi_statements t on t.id = c.target join xapi_statement_index i on i.key = t.key
    on conflict do nothing`;
  await sql`
    with recursive up (key, id, source) as (
      select s.key, s.id, s.ref_target from xapi_statements s
       where s.ref_target = any(${sql.array([...ids], UUID_ARRAY)}) and not (s.id = any(${sql.array([...ids], UUID_ARRAY)}))
      union
      select s.key, s.id, up.source from xapi_statements s join up on s.ref_target = up.id
    )
    insert into xapi_statement_index (kind, hash, key)
    select i.kind, i.hash, up.key
      from up join xapi_statements n on n.id = up.source join xapi_statement_index i on i.key = n.key
    on conflict do nothing`;
}

/** The Activities resource's canonical definitions: the latest definition's properties win. */
async function upsertActivities(sql: AnySql, stored: readonly Prepared[]): Promise<void> {
  const merged = new Map<string, Obj | undefined>();
  for (const prepared of stored) {
    for (const [id, definition] of prepared.activities) {
      merged.set(id, mergeDefinitions(merged.get(id), definition));
    }
  }
  if (merged.size === 0) return;
  const rows = [...merged].map(([id, definition]) => ({
    hash: activityHash(id).toString('hex'),
    id,
    definition: definition && Object.keys(definition).length > 0 ? definition : null,
  }));
  await sql`
    insert into xapi_activities (id_hash, activity_id, definition)
    select decode(r.hash, 'hex'), r.id, r.definition
      from jsonb_to_recordset(${sql.json(rows as unknown as postgres.JSONValue)}) as r(hash text, id text, definition jsonb)
     order by 1
    on conflict (id_hash) do update
       set definition = case when excluded.definition is null then xapi_activities.definition
                             else coalesce(xapi_activities.definition, '{}'::jsonb) || excluded.definition
                                  || jsonb_strip_nulls(jsonb_build_object(
                                       'name', (xapi_activities.definition -> 'name') || (excluded.definition -> 'name'),
                                       'description',
                                       (xapi_activities.definition -> 'description') || (excluded.definition -> 'description')))
                        end,
           updated_at = now()`;
}

// ---------------------------------------------------------------------------------------------------------
// Reading one statement
// ---------------------------------------------------------------------------------------------------------

export interface StoredStatement {
  key: string;
  statement: Statement;
  attachmentSha2: string[];
}

interface StatementRow {
  key: string;
  statement_ciphertext: string;
  attachment_sha2: string[];
}

export const toStored = (row: StatementRow): StoredStatement => ({
  key: row.key,
  statement: JSON.parse(decrypt(row.statement_ciphertext, STATEMENT_FIELD)) as Statement,
  attachmentSha2: row.attachment_sha2,
});

/** What a client may read of the statements: a student their own, statements/read/mine what it stored. */
export function readableSql(sql: AnySql, client: LrsClient, key: postgres.Fragment): postgres.Fragment {
  const mine = !['all', 'all/read', 'statements/read'].some((scope) => client.scopes.has(scope as never));
  const own = client.ownAgent
    ? sql`exists (select 1 from xapi_statement_index o where o.kind = ${INDEX_KIND.agent} and o.hash = ${client.ownAgent} and o.key = ${key})`
    : sql`true`;
  const stored = mine ? sql`s.authority_hash = ${client.authorityHash}` : sql`true`;
  return sql`${own} and ${stored}`;
}

/** One statement by id: voided ones only when asked for by voidedStatementId, and only those then. */
export async function findStatement(
  sql: AnySql,
  id: string,
  voided: boolean,
  client: LrsClient,
): Promise<StoredStatement | null> {
  const [row] = await sql<StatementRow[]>`
    select s.key::text, s.statement_ciphertext, s.attachment_sha2
      from xapi_statements s
     where s.id = ${id.toLowerCase()}::uuid and s.voided = ${voided} and ${readableSql(sql, client, sql`s.key`)}`;
  return row ? toStored(row) : null;
}
