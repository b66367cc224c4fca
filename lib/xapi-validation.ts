// The data rules of xAPI 1.0.3 and 2.0 (IEEE 9274.1.1), written out by hand: every MUST of the data section a
// statement can break (structure, unknown or null properties, IRIs, language maps, UUIDs, timestamps,
// durations, actor forms, result and context rules, voiding, attachments). A rule broken is a message naming
// the property path (`object.definition.choices[1].id`); the Statement Resource answers 400 with them. No kept
// validation library covers both versions' rules (the JSON schemas in circulation miss the cross-property
// ones: revision only with an activity, components per interaction type, a voiding object), so they are here.
//
// Why one file over 350 lines: one checker walks a statement the way the specification nests it
// (actor, verb, object, result, context, attachments, and a sub-statement that repeats most of them),
// so its methods call each other recursively and share the version and the issue list; split, every
// part would need the others.

export type XapiVersion = '1.0.3' | '2.0.0';

export interface Issue {
  path: string;
  message: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

export const VOIDED_VERB = 'http://adlnet.gov/expapi/verbs/voided';
export const SIGNATURE_USAGE = 'http://adlnet.gov/expapi/attachments/signature';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const IRI = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"{}|\\^`]+$/u;
const MAILTO = /^mailto:[^\s@:/]+@[^\s@/]+$/i;
const SHA1_HEX = /^[0-9a-f]{40}$/i;
const SHA2_HEX = /^(?:[0-9a-f]{56}|[0-9a-f]{64}|[0-9a-f]{96}|[0-9a-f]{128})$/i;
const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]+\/[A-Za-z0-9!#$&^_.+-]+(?:\s*;.*)?$/;
const VERSION = /^(?:1\.0(?:\.\d+)?|2\.0(?:\.\d+)?)$/;

// RFC 5646 language tags (the grammar, minus the irregular grandfathered tags nobody sends).
const LANGUAGE_TAG =
  /^(?:(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|\d{3}))?(?:-(?:[A-Za-z0-9]{5,8}|\d[A-Za-z0-9]{3}))*(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*(?:-x(?:-[A-Za-z0-9]{1,8})+)?|x(?:-[A-Za-z0-9]{1,8})+|i-[A-Za-z]{2,8})$/;

// ISO 8601 date-time with a calendar check; 2.0 wants RFC 3339 (an offset always, `T` or space).
const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?$/i;
const DURATION =
  /^P(?:\d+(?:[.,]\d+)?W|(?=\d|T\d)(?:\d+(?:[.,]\d+)?Y)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?D)?(?:T(?=\d)(?:\d+(?:[.,]\d+)?H)?(?:\d+(?:[.,]\d+)?M)?(?:\d+(?:[.,]\d+)?S)?)?)$/;

const INTERACTION_TYPES = new Set([
  'true-false',
  'choice',
  'fill-in',
  'long-fill-in',
  'matching',
  'performance',
  'sequencing',
  'likert',
  'numeric',
  'other',
]);
const COMPONENT_LISTS = ['choices', 'scale', 'source', 'target', 'steps'] as const;
const COMPONENTS_OF: Record<string, readonly string[]> = {
  choice: ['choices'],
  sequencing: ['choices'],
  likert: ['scale'],
  matching: ['source', 'target'],
  performance: ['steps'],
};
const CONTEXT_ACTIVITY_KEYS = new Set(['parent', 'grouping', 'category', 'other']);

export function isUuid(value: unknown): value is string {
  return typeof value === 'string' && UUID.test(value);
}

export function isIri(value: unknown): value is string {
  return typeof value === 'string' && IRI.test(value);
}

export function isLanguageTag(value: unknown): value is string {
  return typeof value === 'string' && LANGUAGE_TAG.test(value);
}

/** An ISO 8601 timestamp the calendar allows; for 2.0 also RFC 3339 (offset required, no -00:00). */
export function isTimestamp(value: unknown, version: XapiVersion = '1.0.3'): value is string {
  if (typeof value !== 'string') return false;
  const m = TIMESTAMP.exec(value);
  if (!m) return false;
  const [, y, mo, d, h, mi, s, , zone] = m;
  const month = Number(mo);
  const day = Number(d);
  if (month < 1 || month > 12 || day < 1 || day > new Date(Date.UTC(Number(y), month, 0)).getUTCDate()) return false;
  if (Number(h) > 23 || Number(mi) > 59 || Number(s ?? 0) > 60) return false;
  // "-00:00" says the offset is unknown (RFC 3339 §4.3): xAPI refuses it.
  if (zone && /^-00(?::?00)?$/.test(zone)) return false;
  if (version === '2.0.0' && !zone) return false;
  return true;
}

export function isDuration(value: unknown): value is string {
  return typeof value === 'string' && DURATION.test(value);
}

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Collects the issues of one statement (or one batch entry). */
class Checker {
  readonly issues: Issue[] = [];
  constructor(readonly version: XapiVersion) {}

  fail(path: string, message: string): void {
    if (this.issues.length < 50) this.issues.push({ path, message });
  }

  object(value: unknown, path: string): value is Obj {
    if (isObject(value)) return true;
    this.fail(path, 'Must be a JSON object');
    return false;
  }

  keys(value: Obj, path: string, allowed: readonly string[], required: readonly string[] = []): void {
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) this.fail(join(path, key), 'Is not a property of this object');
      else if (value[key] === null) this.fail(join(path, key), 'Must not be null');
    }
    for (const key of required) if (!(key in value)) this.fail(join(path, key), 'Is required');
  }

  string(value: unknown, path: string): value is string {
    if (typeof value === 'string') return true;
    this.fail(path, 'Must be a string');
    return false;
  }

  boolean(value: unknown, path: string): void {
    if (typeof value !== 'boolean') this.fail(path, 'Must be true or false');
  }

  iri(value: unknown, path: string): void {
    if (this.string(value, path) && !IRI.test(value)) this.fail(path, 'Must be an absolute IRI');
  }

  uuid(value: unknown, path: string): void {
    if (this.string(value, path) && !UUID.test(value)) this.fail(path, 'Must be a UUID');
  }

  timestamp(value: unknown, path: string): void {
    if (this.string(value, path) && !isTimestamp(value, this.version)) {
      this.fail(path, this.version === '2.0.0' ? 'Must be an RFC 3339 timestamp' : 'Must be an ISO 8601 timestamp');
    }
  }

  languageMap(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    for (const [tag, text] of Object.entries(value)) {
      if (!LANGUAGE_TAG.test(tag)) this.fail(join(path, tag), 'Is not an RFC 5646 language tag');
      if (typeof text !== 'string') this.fail(join(path, tag), 'Must be a string');
    }
  }

  extensions(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    // Extension values may be anything JSON, null included; the keys must be IRIs.
    for (const key of Object.keys(value)) if (!IRI.test(key)) this.fail(join(path, key), 'Must be an IRI');
  }

  objectType(value: Obj, path: string, expected: string, required: boolean): void {
    if (!('objectType' in value)) {
      if (required) this.fail(join(path, 'objectType'), `Is required ("${expected}")`);
      return;
    }
    if (value.objectType !== expected) this.fail(join(path, 'objectType'), `Must be "${expected}"`);
  }

  /** The inverse functional identifiers present, each checked. */
  ifis(value: Obj, path: string): string[] {
    const present = (['mbox', 'mbox_sha1sum', 'openid', 'account'] as const).filter((key) => key in value);
    if (typeof value.mbox === 'string' && !MAILTO.test(value.mbox)) {
      this.fail(join(path, 'mbox'), 'Must be a mailto: IRI of an email address');
    } else if ('mbox' in value && typeof value.mbox !== 'string') this.fail(join(path, 'mbox'), 'Must be a string');
    if ('mbox_sha1sum' in value && !(typeof value.mbox_sha1sum === 'string' && SHA1_HEX.test(value.mbox_sha1sum))) {
      this.fail(join(path, 'mbox_sha1sum'), 'Must be the hex SHA-1 of a mailto: IRI');
    }
    if ('openid' in value) this.iri(value.openid, join(path, 'openid'));
    if ('account' in value) this.account(value.account, join(path, 'account'));
    return present;
  }

  account(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    this.keys(value, path, ['homePage', 'name'], ['homePage', 'name']);
    if ('homePage' in value) this.iri(value.homePage, join(path, 'homePage'));
    if ('name' in value) this.string(value.name, join(path, 'name'));
  }

  agent(value: unknown, path: string, objectTypeRequired = false): void {
    if (!this.object(value, path)) return;
    this.keys(value, path, ['objectType', 'name', 'mbox', 'mbox_sha1sum', 'openid', 'account']);
    this.objectType(value, path, 'Agent', objectTypeRequired);
    if ('name' in value) this.string(value.name, join(path, 'name'));
    if (this.ifis(value, path).length !== 1)
      this.fail(path, 'An agent has exactly one of mbox, mbox_sha1sum, openid, account');
  }

  group(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    this.keys(value, path, ['objectType', 'name', 'member', 'mbox', 'mbox_sha1sum', 'openid', 'account']);
    this.objectType(value, path, 'Group', true);
    if ('name' in value) this.string(value.name, join(path, 'name'));
    const ifis = this.ifis(value, path);
    if (ifis.length > 1) this.fail(path, 'A group has at most one of mbox, mbox_sha1sum, openid, account');
    if ('member' in value) {
      if (!Array.isArray(value.member)) this.fail(join(path, 'member'), 'Must be an array of agents');
      else
        value.member.forEach((member, i) => {
          this.agent(member, `${path}.member[${i}]`);
        });
    }
    const members = Array.isArray(value.member) ? value.member.length : 0;
    if (ifis.length === 0 && members === 0) this.fail(join(path, 'member'), 'An anonymous group lists its members');
  }

  actor(value: unknown, path: string): void {
    if (isObject(value) && value.objectType === 'Group') this.group(value, path);
    else this.agent(value, path);
  }

  verb(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    this.keys(value, path, ['id', 'display'], ['id']);
    if ('id' in value) this.iri(value.id, join(path, 'id'));
    if ('display' in value) this.languageMap(value.display, join(path, 'display'));
  }

  activity(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    this.keys(value, path, ['objectType', 'id', 'definition'], ['id']);
    this.objectType(value, path, 'Activity', false);
    if ('id' in value) this.iri(value.id, join(path, 'id'));
    if ('definition' in value) this.definition(value.definition, join(path, 'definition'));
  }

  definition(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    this.keys(value, path, [
      'name',
      'description',
      'type',
      'moreInfo',
      'extensions',
      'interactionType',
      'correctResponsesPattern',
      ...COMPONENT_LISTS,
    ]);
    if ('name' in value) this.languageMap(value.name, join(path, 'name'));
    if ('description' in value) this.languageMap(value.description, join(path, 'description'));
    if ('type' in value) this.iri(value.type, join(path, 'type'));
    if ('moreInfo' in value) this.iri(value.moreInfo, join(path, 'moreInfo'));
    if ('extensions' in value) this.extensions(value.extensions, join(path, 'extensions'));
    const type = value.interactionType;
    if ('interactionType' in value && !(typeof type === 'string' && INTERACTION_TYPES.has(type))) {
      this.fail(join(path, 'interactionType'), 'Is not an xAPI interaction type');
    }
    if ('correctResponsesPattern' in value) {
      const pattern = value.correctResponsesPattern;
      if (!Array.isArray(pattern) || pattern.some((item) => typeof item !== 'string')) {
        this.fail(join(path, 'correctResponsesPattern'), 'Must be an array of strings');
      }
      if (!('interactionType' in value))
        this.fail(join(path, 'interactionType'), 'Is required with correctResponsesPattern');
    }
    for (const list of COMPONENT_LISTS) {
      if (!(list in value)) continue;
      if (!('interactionType' in value)) this.fail(join(path, 'interactionType'), `Is required with ${list}`);
      else if (typeof type === 'string' && !(COMPONENTS_OF[type] ?? []).includes(list)) {
        this.fail(join(path, list), `Is not a component list of a "${type}" interaction`);
      }
      this.components(value[list], join(path, list));
    }
  }

  components(value: unknown, path: string): void {
    if (!Array.isArray(value)) {
      this.fail(path, 'Must be an array of interaction components');
      return;
    }
    const ids = new Set<string>();
    value.forEach((component, i) => {
      const at = `${path}[${i}]`;
      if (!this.object(component, at)) return;
      this.keys(component, at, ['id', 'description'], ['id']);
      if (this.string(component.id, `${at}.id`)) {
        if (ids.has(component.id)) this.fail(`${at}.id`, 'Is the id of another component of this list');
        ids.add(component.id);
      }
      if ('description' in component) this.languageMap(component.description, `${at}.description`);
    });
  }

  statementRef(value: Obj, path: string): void {
    this.keys(value, path, ['objectType', 'id'], ['objectType', 'id']);
    if ('id' in value) this.uuid(value.id, join(path, 'id'));
  }

  object_(value: unknown, path: string, inSubStatement: boolean): void {
    if (!this.object(value, path)) return;
    switch (value.objectType ?? 'Activity') {
      case 'Activity': {
        this.activity(value, path);
        return;
      }
      case 'Agent': {
        this.agent(value, path, true);
        return;
      }
      case 'Group': {
        this.group(value, path);
        return;
      }
      case 'StatementRef': {
        this.statementRef(value, path);
        return;
      }
      case 'SubStatement':
        if (inSubStatement) {
          this.fail(join(path, 'objectType'), 'A SubStatement cannot hold a SubStatement');
          return;
        }
        {
          this.statementBody(value, path, true);
          return;
        }
      default:
        this.fail(join(path, 'objectType'), 'Must be Activity, Agent, Group, StatementRef or SubStatement');
    }
  }

  result(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    this.keys(value, path, ['score', 'success', 'completion', 'response', 'duration', 'extensions']);
    if ('score' in value) this.score(value.score, join(path, 'score'));
    if ('success' in value) this.boolean(value.success, join(path, 'success'));
    if ('completion' in value) this.boolean(value.completion, join(path, 'completion'));
    if ('response' in value) this.string(value.response, join(path, 'response'));
    if ('duration' in value && !isDuration(value.duration))
      this.fail(join(path, 'duration'), 'Must be an ISO 8601 duration');
    if ('extensions' in value) this.extensions(value.extensions, join(path, 'extensions'));
  }

  score(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    this.keys(value, path, ['scaled', 'raw', 'min', 'max']);
    for (const key of ['scaled', 'raw', 'min', 'max']) {
      if (key in value && typeof value[key] !== 'number') this.fail(join(path, key), 'Must be a number');
    }
    const { scaled, raw, min, max } = value as Record<string, unknown>;
    if (typeof scaled === 'number' && (scaled < -1 || scaled > 1))
      this.fail(join(path, 'scaled'), 'Must be from -1 to 1');
    if (typeof min === 'number' && typeof max === 'number' && !(min < max))
      this.fail(join(path, 'max'), 'Must be greater than min');
    if (typeof raw === 'number' && typeof min === 'number' && raw < min)
      this.fail(join(path, 'raw'), 'Must not be below min');
    if (typeof raw === 'number' && typeof max === 'number' && raw > max)
      this.fail(join(path, 'raw'), 'Must not be above max');
  }

  context(value: unknown, path: string, objectIsActivity: boolean): void {
    if (!this.object(value, path)) return;
    const keys = [
      'registration',
      'instructor',
      'team',
      'contextActivities',
      'revision',
      'platform',
      'language',
      'statement',
      'extensions',
      ...(this.version === '2.0.0' ? ['contextAgents', 'contextGroups'] : []),
    ];
    this.keys(value, path, keys);
    if ('registration' in value) this.uuid(value.registration, join(path, 'registration'));
    if ('instructor' in value) this.actor(value.instructor, join(path, 'instructor'));
    if ('team' in value) this.group(value.team, join(path, 'team'));
    if ('contextActivities' in value) this.contextActivities(value.contextActivities, join(path, 'contextActivities'));
    for (const key of ['revision', 'platform']) {
      if (!(key in value)) continue;
      this.string(value[key], join(path, key));
      if (!objectIsActivity) this.fail(join(path, key), 'Is only allowed when the object is an activity');
    }
    if ('language' in value && !isLanguageTag(value.language))
      this.fail(join(path, 'language'), 'Is not an RFC 5646 language tag');
    if ('statement' in value) {
      const ref = value.statement;
      if (this.object(ref, join(path, 'statement'))) {
        this.objectType(ref, join(path, 'statement'), 'StatementRef', true);
        this.statementRef(ref, join(path, 'statement'));
      }
    }
    if ('extensions' in value) this.extensions(value.extensions, join(path, 'extensions'));
    if ('contextAgents' in value) this.contextAgents(value.contextAgents, join(path, 'contextAgents'), 'agent');
    if ('contextGroups' in value) this.contextAgents(value.contextGroups, join(path, 'contextGroups'), 'group');
  }

  contextAgents(value: unknown, path: string, kind: 'agent' | 'group'): void {
    if (!Array.isArray(value)) {
      this.fail(path, 'Must be an array');
      return;
    }
    value.forEach((entry, i) => {
      const at = `${path}[${i}]`;
      if (!this.object(entry, at)) return;
      this.keys(entry, at, ['objectType', kind, 'relevantTypes'], ['objectType', kind]);
      this.objectType(entry, at, kind === 'agent' ? 'contextAgent' : 'contextGroup', true);
      if (kind === 'agent' && kind in entry) this.agent(entry.agent, `${at}.agent`);
      if (kind === 'group' && kind in entry) this.group(entry.group, `${at}.group`);
      if ('relevantTypes' in entry) {
        const types = entry.relevantTypes;
        if (!Array.isArray(types) || types.length === 0)
          this.fail(`${at}.relevantTypes`, 'Must be a non-empty array of IRIs');
        else
          types.forEach((type, j) => {
            this.iri(type, `${at}.relevantTypes[${j}]`);
          });
      }
    });
  }

  contextActivities(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    for (const [key, activities] of Object.entries(value)) {
      if (!CONTEXT_ACTIVITY_KEYS.has(key)) {
        this.fail(join(path, key), 'Must be parent, grouping, category or other');
        continue;
      }
      if (Array.isArray(activities))
        activities.forEach((activity, i) => {
          this.activity(activity, `${path}.${key}[${i}]`);
        });
      else this.activity(activities, join(path, key));
    }
  }

  attachments(value: unknown, path: string): void {
    if (!Array.isArray(value)) {
      this.fail(path, 'Must be an array of attachments');
      return;
    }
    value.forEach((attachment, i) => {
      const at = `${path}[${i}]`;
      if (!this.object(attachment, at)) return;
      this.keys(
        attachment,
        at,
        ['usageType', 'display', 'description', 'contentType', 'length', 'sha2', 'fileUrl'],
        ['usageType', 'display', 'contentType', 'length', 'sha2'],
      );
      if ('usageType' in attachment) this.iri(attachment.usageType, `${at}.usageType`);
      if ('display' in attachment) this.languageMap(attachment.display, `${at}.display`);
      if ('description' in attachment) this.languageMap(attachment.description, `${at}.description`);
      if (
        'contentType' in attachment &&
        !(typeof attachment.contentType === 'string' && MEDIA_TYPE.test(attachment.contentType))
      ) {
        this.fail(`${at}.contentType`, 'Must be an Internet media type');
      }
      if ('length' in attachment && !(Number.isInteger(attachment.length) && (attachment.length as number) >= 0)) {
        this.fail(`${at}.length`, 'Must be a whole number of bytes');
      }
      if ('sha2' in attachment && !(typeof attachment.sha2 === 'string' && SHA2_HEX.test(attachment.sha2))) {
        this.fail(`${at}.sha2`, 'Must be the hex SHA-2 of the attachment');
      }
      if ('fileUrl' in attachment) this.iri(attachment.fileUrl, `${at}.fileUrl`);
    });
  }

  /** What a statement and a SubStatement share: actor, verb, object, result, context, timestamp. */
  statementBody(value: Obj, path: string, sub: boolean): void {
    const common = ['actor', 'verb', 'object', 'result', 'context', 'timestamp', 'attachments'];
    if (sub) this.keys(value, path, ['objectType', ...common], ['objectType', 'actor', 'verb', 'object']);
    else {
      this.keys(value, path, ['id', 'stored', 'authority', 'version', ...common], ['actor', 'verb', 'object']);
    }
    if ('actor' in value) this.actor(value.actor, join(path, 'actor'));
    if ('verb' in value) this.verb(value.verb, join(path, 'verb'));
    if ('object' in value) this.object_(value.object, join(path, 'object'), sub);
    if ('result' in value) this.result(value.result, join(path, 'result'));
    if ('context' in value) {
      const object = value.object;
      const isActivity = isObject(object) && (object.objectType ?? 'Activity') === 'Activity';
      this.context(value.context, join(path, 'context'), isActivity);
    }
    if ('timestamp' in value) this.timestamp(value.timestamp, join(path, 'timestamp'));
    if ('attachments' in value) this.attachments(value.attachments, join(path, 'attachments'));
  }

  statement(value: unknown, path: string): void {
    if (!this.object(value, path)) return;
    this.statementBody(value, path, false);
    if ('id' in value) this.uuid(value.id, join(path, 'id'));
    if ('stored' in value) this.timestamp(value.stored, join(path, 'stored'));
    if ('version' in value && !(typeof value.version === 'string' && VERSION.test(value.version))) {
      this.fail(join(path, 'version'), 'Must be an xAPI version (1.0.x or 2.0.x)');
    }
    if ('authority' in value) this.authority(value.authority, join(path, 'authority'));
    this.nulls(value, path);
    const verb = value.verb;
    if (isObject(verb) && verb.id === VOIDED_VERB) {
      const object = value.object;
      if (!isObject(object) || object.objectType !== 'StatementRef') {
        this.fail(join(path, 'object'), 'A voiding statement targets a StatementRef');
      }
    }
  }

  /** An agent, or the anonymous two-agent group of a three-legged OAuth authority; never an identified group. */
  authority(value: unknown, path: string): void {
    if (!isObject(value) || value.objectType !== 'Group') {
      this.agent(value, path);
      return;
    }
    this.group(value, path);
    if (['mbox', 'mbox_sha1sum', 'openid', 'account'].some((key) => key in value)) {
      this.fail(path, 'An authority group is anonymous (OAuth: a consumer and a user)');
    }
    if (!Array.isArray(value.member) || value.member.length !== 2) {
      this.fail(join(path, 'member'), 'An authority group has exactly two members');
    }
  }

  /** JSON null is allowed only inside extensions' values. */
  nulls(value: Json, path: string): void {
    if (value === null) {
      this.fail(path, 'Must not be null');
      return;
    }
    if (Array.isArray(value)) {
      value.forEach((item, i) => {
        this.nulls(item, `${path}[${i}]`);
      });
      return;
    }
    if (!isObject(value)) return;
    for (const [key, item] of Object.entries(value)) {
      if (key === 'extensions') continue;
      this.nulls(item, join(path, key));
    }
  }
}

function join(path: string, key: string): string {
  return /^[A-Za-z_][\w]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/** The rules one statement breaks (empty when it is valid); `path` prefixes every issue. */
export function statementIssues(statement: unknown, version: XapiVersion, path = 'statement'): Issue[] {
  const checker = new Checker(version);
  checker.statement(statement, path);
  return checker.issues;
}

/** The rules an agent (a query's `agent`, a document's `agent`) breaks. */
export function agentIssues(agent: unknown, version: XapiVersion, path = 'agent'): Issue[] {
  const checker = new Checker(version);
  if (isObject(agent) && agent.objectType === 'Group') {
    checker.group(agent, path);
    if (!['mbox', 'mbox_sha1sum', 'openid', 'account'].some((key) => key in agent)) {
      checker.fail(path, 'Must be an agent or an identified group');
    }
  } else checker.agent(agent, path);
  return checker.issues;
}

/** The rules a statement batch (a POST's body) breaks: an array of statements, or one. */
export function batchIssues(body: unknown, version: XapiVersion): Issue[] {
  if (!Array.isArray(body)) return statementIssues(body, version);
  if (body.length === 0) return [{ path: 'statements', message: 'The batch is empty' }];
  return body.flatMap((statement, i) => statementIssues(statement, version, `statements[${i}]`));
}
