// The blind indexes the LRS looks statements and documents up by (lib/crypto.ts blindIndex, 16 bytes):
// an agent by its inverse functional identifier, an activity, a verb, a registration. The database holds
// these, never the agent, so a filter is an index scan on a value nobody can read back.
import { blindIndex } from './crypto';

/** Kinds of index row of a statement (xapi_statement_index.kind). */
export const INDEX_KIND = {
  /** The actor, or an agent or group as the object: the `agent` filter. */
  agent: 1,
  /** Every agent a statement names (authority, instructor, team, context agents, sub-statement): `related_agents`. */
  relatedAgent: 2,
  /** The object activity: the `activity` filter. */
  activity: 3,
  /** Every activity a statement names (context activities, sub-statement): `related_activities`. */
  relatedActivity: 4,
  registration: 5,
  verb: 6,
} as const;
export type IndexKind = (typeof INDEX_KIND)[keyof typeof INDEX_KIND];

const HASH_BYTES = 16;

type Agentish = Record<string, unknown>;

/** An agent's or identified group's identifier as one string, or null for an anonymous group. */
export function ifiOf(agent: Agentish): string | null {
  if (typeof agent.mbox === 'string') return `mbox\u0000${agent.mbox.toLowerCase()}`;
  if (typeof agent.mbox_sha1sum === 'string') return `mbox_sha1sum\u0000${agent.mbox_sha1sum.toLowerCase()}`;
  if (typeof agent.openid === 'string') return `openid\u0000${agent.openid}`;
  const account = agent.account as { homePage?: unknown; name?: unknown } | undefined;
  if (account && typeof account.homePage === 'string' && typeof account.name === 'string') {
    return `account\u0000${account.homePage}\u0000${account.name}`;
  }
  return null;
}

export function agentHash(agent: Agentish): Buffer | null {
  const ifi = ifiOf(agent);
  return ifi === null ? null : blindIndex('xapi-agent', ifi, HASH_BYTES);
}

export const activityHash = (id: string): Buffer => blindIndex('xapi-activity', id, HASH_BYTES);
export const verbHash = (id: string): Buffer => blindIndex('xapi-verb', id, HASH_BYTES);
export const registrationHash = (id: string): Buffer => blindIndex('xapi-registration', id.toLowerCase(), HASH_BYTES);

/** A document's blind indexes: of its set (resource, activity, agent, registration) and of the document. */
export function documentHashes(
  resource: string,
  scope: { activityId?: string | undefined; agent?: Buffer | undefined; registration?: string | undefined },
  documentId?: string,
): { setHash: Buffer; keyHash: Buffer | null } {
  const set = [
    resource,
    scope.activityId ?? '',
    scope.agent?.toString('hex') ?? '',
    scope.registration?.toLowerCase() ?? '',
  ].join('\u0000');
  return {
    setHash: blindIndex('xapi-document-set', set, HASH_BYTES),
    keyHash: documentId === undefined ? null : blindIndex('xapi-document', `${set}\u0000${documentId}`, HASH_BYTES),
  };
}
