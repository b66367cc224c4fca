// The Activities and Agents resources (xAPI Communication §2.4, §2.5): an activity's canonical definition as
// this LRS keeps it (xapi_activities, updated by every statement that defines it), and the Person object of
// an agent. The LRS stores no agent readably, so a Person lists the identifier (and name) it was asked about.
import type { AnySql } from './db';
import type { Reply } from './http';
import { activityHash } from './xapi-index';
import { onlyParameters, parameter, parseJson, type XapiRequest, xapiBadRequest } from './xapi-protocol';
import { agentIssues, isIri } from './xapi-validation';

/** GET activities?activityId=: the Activity object (id only when no statement defined it yet). */
export async function getActivity(sql: AnySql, request: XapiRequest): Promise<Reply> {
  onlyParameters(request, ['activityId']);
  const activityId = parameter(request, 'activityId');
  if (activityId === undefined || !isIri(activityId))
    throw xapiBadRequest('activityId is required, an IRI', 'activityId');
  const [row] = await sql<{ definition: Record<string, unknown> | null }[]>`
    select definition from xapi_activities where id_hash = ${activityHash(activityId)}`;
  const body = { objectType: 'Activity', id: activityId, ...(row?.definition ? { definition: row.definition } : {}) };
  return { kind: 'json', status: 200, body };
}

/** GET agents?agent=: the Person object of the agent. */
export async function getPerson(_sql: AnySql, request: XapiRequest): Promise<Reply> {
  onlyParameters(request, ['agent']);
  const text = parameter(request, 'agent');
  if (text === undefined) throw xapiBadRequest('agent is required', 'agent');
  const agent = parseJson(text, 'agent') as Record<string, unknown>;
  const issues = agentIssues(agent, request.version);
  if (issues.length > 0) throw xapiBadRequest(`agent: ${issues[0]?.message}`, 'agent');
  const person: Record<string, unknown> = { objectType: 'Person' };
  for (const key of ['name', 'mbox', 'mbox_sha1sum', 'openid', 'account']) if (key in agent) person[key] = [agent[key]];
  return { kind: 'json', status: 200, body: person };
}
