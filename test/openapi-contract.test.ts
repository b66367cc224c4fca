// The OpenAPI contract, deny by default: every 2xx of every route has a schema (the routes that have not
// declared theirs yet are a known list that may only shrink), every error status a route can give is a
// problem+json response on the one shared Problem component, every request constraint is in the document,
// and real answers validate against the document's own JSON Schemas (ajv, draft 2020-12, as OpenAPI 3.1).
// That every answer of the whole suite matches its zod schema is checked by the wrapper itself under test
// (lib/endpoint.ts, checkedAgainstContract); the breach check is tested here.
import Ajv2020 from 'ajv/dist/2020';
import { beforeAll, describe, expect, test } from 'vitest';
import { z } from 'zod';
import type { contractBreach as ContractBreach } from '../lib/endpoint';
import { json } from '../lib/http';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createRoleAccounts } from './helpers/roles';
import type { TestUser } from './helpers/users';

const app = useTestApp();

type Schema = Record<string, unknown>;
interface Operation {
  operationId: string;
  parameters: { name: string; in: string; schema: Schema }[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  responses: Record<string, { $ref?: string; description?: string; content?: Record<string, { schema?: Schema }> }>;
}
interface Document {
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, Schema>; responses: Record<string, { content: Record<string, unknown> }> };
}

/**
 * Operations whose 2xx answers have no schema yet (by operation id: the route's name, with the method
 * for a route of several). This list may only shrink: a route that declares its `responses` must leave
 * it (the test fails until it does), and no new route may join it.
 */
const UNDECLARED = new Set([
  'agreement-templates-activate',
  'agreement-templates-create',
  'agreement-templates-list',
  'agreement-templates-retire',
  'agreement-templates-upload',
  'agreements-countersign',
  'agreements-events',
  'agreements-get',
  'agreements-list',
  'agreements-pdf',
  'agreements-resend',
  'agreements-send',
  'agreements-signing-consent',
  'agreements-signing-copy',
  'agreements-signing-open',
  'agreements-signing-paper-copy',
  'agreements-signing-sign',
  'agreements-signing-status',
  'agreements-signing-withdraw-consent',
  'agreements-verify',
  'agreements-void',
  'attendance-below-threshold',
  'attendance-enrollment-rollup',
  'attendance-records-correct',
  'attendance-records-history',
  'attendance-records-list',
  'attendance-sessions-get',
  'attendance-sessions-record',
  'audit-logs-list',
  'audit-phi-access-list',
  'audit-summary',
  'audit-user-activity',
  'complaints-file',
  'complaints-get',
  'complaints-list',
  'complaints-transition',
  'content-files-get',
  'content-files-list',
  'content-files-retire',
  'content-files-upload',
  'credentials-issue',
  'credentials-list',
  'credentials-revoke',
  'docs-asset',
  'docs-page',
  'enrollments-create',
  'enrollments-get',
  'enrollments-history',
  'enrollments-list',
  'enrollments-transition',
  'enrollments-update',
  'externships-approve-hours',
  'externships-create',
  'externships-get',
  'externships-list',
  'externships-log-hours',
  'externships-verify',
  'h5p-asset',
  'h5p-get',
  'h5p-list',
  'h5p-player',
  'h5p-retire',
  'h5p-runtime',
  'h5p-upload',
  'ledger-balance',
  'ledger-balances',
  'ledger-history',
  'ledger-payments-post',
  'ledger-payments-receipt',
  'ledger-post',
  'ledger-refund-approval-reverse',
  'ledger-refund-approve',
  'ledger-refund-override',
  'ledger-refund-read',
  'ledger-refund-remit',
  'ledger-refunds-due',
  'ledger-reverse',
  'ledger-statement',
  'ledger-withdrawal-read',
  'ledger-withdrawal-record',
  'leads-convert',
  'leads-get',
  'leads-list',
  'leads-search',
  'lessons-publish',
  'lessons-published',
  'lessons-versions-create',
  'lessons-versions-get',
  'lessons-versions-list',
  'lrs-credentials-create',
  'lrs-credentials-list',
  'lrs-credentials-revoke',
  'progress-record',
  'progress-summary',
  'roles-list',
  'scorm-learner',
  'scorm-own',
  'scorm-save',
  'skills-checkoffs-decide',
  'skills-checkoffs-list',
  'skills-checkoffs-record',
  'students-create',
  'students-deactivate',
  'students-get',
  'students-list',
  'students-search',
  'students-update',
  'transcripts-create',
  'transcripts-get',
  'transcripts-pdf',
  'users-create',
  'users-deactivate',
  'users-get',
  'users-list',
  'users-roles-assign',
  'users-roles-remove',
  'users-search',
  'users-update',
  'xapi-about',
  'xapi-activities',
  'xapi-activity-profile-read',
  'xapi-activity-profile-write-delete',
  'xapi-activity-profile-write-post',
  'xapi-activity-profile-write-put',
  'xapi-agent-profile-read',
  'xapi-agent-profile-write-delete',
  'xapi-agent-profile-write-post',
  'xapi-agent-profile-write-put',
  'xapi-agents',
  'xapi-module-activities-read',
  'xapi-module-activities-write',
  'xapi-state-read',
  'xapi-state-write-delete',
  'xapi-state-write-post',
  'xapi-state-write-put',
  'xapi-statements-read',
  'xapi-statements-write-post',
  'xapi-statements-write-put',
]);

/**
 * Request fields that are free-form on purpose, so their values have no bound of their own (the body
 * limit bounds them): the school's and the signer's answers, checked against the template's form, and
 * SCORM interactions, bounded in count and bytes.
 */
const FREE_FORM_FIELDS = new Set([
  // Checked against the template's own form (its fields' lengths) once the template is known.
  'POST /api/agreements body.prefill{}{}',
  'POST /api/agreements/signing/sign body.formData{}',
  'PUT /api/scorm/{moduleId} body.interactions[]{}',
]);

let document: Document;
let admin: TestUser;
// Imported once the app booted: a static import of lib/endpoint would load @azure/functions in its test mode.
let contractBreach: typeof ContractBreach;

beforeAll(async () => {
  ({ contractBreach } = await import('../lib/endpoint'));
  document = (await (await app.api('/openapi.json')).json()) as Document;
  ({ admin } = await createRoleAccounts(app.db.sql));
});

function operations(): [string, Operation][] {
  return Object.entries(document.paths).flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, operation]) => [`${method.toUpperCase()} ${path}`, operation] as const),
  ) as [string, Operation][];
}

const isSuccess = (status: string) => /^2\d\d$/.test(status);

describe('every 2xx answer has a schema (deny by default)', () => {
  test('each operation names its 2xx statuses, each with a body schema (204 has none); the rest are the known list', () => {
    const undeclared = new Set<string>();
    for (const [where, operation] of operations()) {
      const successes = Object.entries(operation.responses).filter(([status]) => status.startsWith('2'));
      if (successes.some(([status]) => !isSuccess(status))) {
        undeclared.add(operation.operationId);
        continue;
      }
      expect(successes.length, where).toBeGreaterThan(0);
      for (const [status, response] of successes) {
        if (status === '204') expect(response.content, `${where} ${status}`).toBeUndefined();
        else
          for (const [media, content] of Object.entries(response.content ?? { none: {} }))
            expect(content.schema, `${where} ${status} ${media}`).toBeDefined();
      }
    }
    // A route that declared its answers leaves the list; a new route never joins it.
    const joined = [...undeclared].filter((id) => !UNDECLARED.has(id));
    const left = [...UNDECLARED].filter((id) => !undeclared.has(id));
    expect(joined, 'declare `responses` (and `problems`) on these routes: lib/endpoint.ts says how').toEqual([]);
    expect(left, 'these now declare their answers: take them off UNDECLARED').toEqual([]);
  });

  test('the schemas are JSON Schema that compiles, and every $ref points into the document', () => {
    const ajv = validator();
    const refs: string[] = [];
    const collect = (value: unknown) => {
      if (Array.isArray(value)) value.forEach(collect);
      else if (value && typeof value === 'object')
        for (const [key, inner] of Object.entries(value)) key === '$ref' ? refs.push(String(inner)) : collect(inner);
    };
    collect(document);
    for (const ref of refs) expect(resolve(ref), ref).toBeDefined();
    for (const [where, operation] of operations())
      for (const [status, response] of Object.entries(operation.responses))
        for (const content of Object.values(response.content ?? {}))
          if (content.schema)
            expect(() => ajv.compile(withComponents(content.schema as Schema)), `${where} ${status}`).not.toThrow();
  });
});

describe('every error status is a problem+json answer', () => {
  test('one shared Problem component, one shared response per status', () => {
    expect(document.components.schemas.Problem).toMatchObject({
      type: 'object',
      required: expect.arrayContaining(['type', 'title', 'status']),
    });
    for (const [name, response] of Object.entries(document.components.responses)) {
      expect(Object.keys(response.content), name).toEqual(['application/problem+json']);
      expect(response.content['application/problem+json'], name).toEqual({
        schema: { $ref: '#/components/schemas/Problem' },
      });
    }
  });

  test('each operation lists the statuses the wrapper can give it', () => {
    for (const [where, operation] of operations()) {
      const statuses = Object.keys(operation.responses);
      const problem = (status: string) => operation.responses[status]?.$ref;
      expect(problem('503') ?? operation.responses['503']?.content, where).toBeDefined();
      expect(problem('414'), where).toBe('#/components/responses/Problem414');
      for (const status of statuses.filter((status) => /^[45]\d\d$/.test(status) && problem(status)))
        expect(problem(status), `${where} ${status}`).toBe(`#/components/responses/Problem${status}`);
      const [method, path] = where.split(' ') as [string, string];
      const security = (operation as unknown as { security: Record<string, unknown>[] }).security;
      if (security.some((scheme) => 'bearer' in scheme))
        for (const status of ['401', '403']) expect(statuses, where).toContain(status);
      if (['POST', 'PUT', 'PATCH'].includes(method)) expect(statuses, where).toContain('413');
      if (operation.requestBody) expect(statuses, where).toEqual(expect.arrayContaining(['400', '415']));
      if (path.includes('{')) expect(statuses, where).toEqual(expect.arrayContaining(['400', '404']));
    }
  });

  test('a handler’s own statuses are listed: 409 for a code taken, 404 for an unknown programme', () => {
    const create = document.paths['/api/programs']?.post;
    expect(Object.keys(create?.responses ?? {})).toContain('409');
    expect(document.paths['/api/programs/{id}']?.get?.responses['404']?.$ref).toBe('#/components/responses/Problem404');
  });
});

describe('every request constraint is in the document', () => {
  test('strings bounded (length, enum, format or pattern), arrays and numbers bounded, nothing untyped', () => {
    const unbounded: string[] = [];
    const walk = (schema: Schema | undefined, where: string) => {
      if (!schema || FREE_FORM_FIELDS.has(where)) return;
      const type = schema.type;
      const types = Array.isArray(type) ? type : [type];
      const has = (...keys: string[]) => keys.some((key) => key in schema);
      if (Object.keys(schema).length === 0) unbounded.push(`${where}: any`);
      if (types.includes('string') && !has('maxLength', 'enum', 'const', 'format', 'pattern'))
        unbounded.push(`${where}: string`);
      if (types.includes('array') && !has('maxItems')) unbounded.push(`${where}: array`);
      if ((types.includes('integer') || types.includes('number')) && !has('maximum', 'exclusiveMaximum', 'enum'))
        unbounded.push(`${where}: number`);
      for (const [name, property] of Object.entries((schema.properties ?? {}) as Record<string, Schema>))
        walk(property, `${where}.${name}`);
      walk(schema.items as Schema | undefined, `${where}[]`);
      if (typeof schema.additionalProperties === 'object') walk(schema.additionalProperties as Schema, `${where}{}`);
      for (const key of ['anyOf', 'oneOf', 'allOf'])
        for (const [i, branch] of ((schema[key] ?? []) as Schema[]).entries()) walk(branch, `${where}|${key}${i}`);
    };
    for (const [where, operation] of operations()) {
      for (const parameter of operation.parameters)
        walk(parameter.schema, `${where} ${parameter.in}.${parameter.name}`);
      walk(operation.requestBody?.content['application/json']?.schema, `${where} body`);
    }
    expect(unbounded).toEqual([]);
  });

  test('what the validators enforce shows: lengths, patterns, enums, formats, ranges, list sizes', () => {
    const create = document.paths['/api/programs']?.post?.requestBody?.content['application/json']?.schema as {
      properties: Record<string, Schema & { items?: { properties: Record<string, Schema> } }>;
    };
    expect(create.properties.code).toMatchObject({ type: 'string', maxLength: expect.any(Number) });
    expect(create.properties.modules).toMatchObject({ type: 'array', maxItems: expect.any(Number) });
    expect(create.properties.modules?.items?.properties.deliveryType).toMatchObject({
      enum: ['online', 'hybrid', 'in_person'],
    });
    const limit = document.paths['/api/programs']?.get?.parameters.find((parameter) => parameter.name === 'limit');
    expect(limit?.schema).toMatchObject({ minimum: 1, maximum: 200 });
    const id = document.paths['/api/programs/{id}']?.get?.parameters.find((parameter) => parameter.name === 'id');
    expect(id?.schema).toMatchObject({ format: 'uuid', pattern: expect.any(String) });
    const complete = document.paths['/api/auth/register/complete']?.post?.requestBody?.content['application/json']
      ?.schema as { properties: Record<string, Schema> };
    expect(complete.properties.password).toMatchObject({ minLength: 12, maxLength: 128 });
  });
});

describe('real answers validate against the document', () => {
  test('catalogue, management, health and the document itself, as answered over HTTP', async () => {
    const code = `OAPI-${crypto.randomUUID().slice(0, 8)}`;
    const created = await send('POST', '/programs', {
      as: admin,
      body: {
        code,
        name: 'Contract programme',
        credentialLevel: 'certificate',
        modules: [{ code: 'M1', title: 'First', deliveryType: 'online', clockHours: 10, requiresInPerson: false }],
      },
    });
    const { id } = (await created.clone().json()) as { id: string };
    await expectValid('POST', '/api/programs', created, 201);
    const module = await send('POST', `/programs/${id}/modules`, {
      as: admin,
      body: { code: 'M2', title: 'Second', deliveryType: 'hybrid', clockHours: 5, requiresInPerson: true },
    });
    await expectValid('POST', '/api/programs/{id}/modules', module, 201);
    const samples: [string, string, string, TestUser | null][] = [
      ['GET', '/api/programs', '/programs?limit=2', null],
      ['GET', '/api/programs/{id}', `/programs/${id}`, null],
      ['GET', '/api/manage/programs', '/manage/programs?limit=3', admin],
      ['GET', '/api/manage/programs/{id}', `/manage/programs/${id}`, admin],
      ['GET', '/api/health', '/health', null],
      ['GET', '/api/health/ready', '/health/ready', null],
      ['GET', '/api/openapi.json', '/openapi.json', null],
    ];
    for (const [method, template, path, as] of samples)
      await expectValid(method, template, await send(method, path, { as }));
    const retired = await send('POST', `/programs/${id}/retire`, { as: admin });
    await expectValid('POST', '/api/programs/{id}/retire', retired, 200);
  });

  test('problems validate against Problem: a 404, a 400 naming fields, a 401', async () => {
    const answers = [
      ['GET', '/api/programs/{id}', await send('GET', `/programs/${crypto.randomUUID()}`), 404],
      ['GET', '/api/programs', await send('GET', '/programs?limit=0x10'), 400],
      ['GET', '/api/manage/programs', await send('GET', '/manage/programs'), 401],
    ] as const;
    for (const [method, template, response, status] of answers) await expectValid(method, template, response, status);
  });
});

describe('the wrapper holds every answer to its declared responses', () => {
  const View = z.strictObject({ id: z.uuid(), name: z.string() });
  const responses = { 200: View, 204: null };
  const id = crypto.randomUUID();

  test('a body its schema accepts passes', () => {
    expect(contractBreach(responses, json({ id, name: 'x' }))).toBeNull();
    expect(contractBreach(responses, { kind: 'empty', status: 204 })).toBeNull();
  });

  test('a field the view added without its schema, a wrong type, an undeclared status or body kind are breaches', () => {
    expect(contractBreach(responses, json({ id, name: 'x', email: 'leak@example.test' }))).toMatch(/email/);
    expect(contractBreach(responses, json({ id, name: 7 }))).toMatch(/name/);
    expect(contractBreach(responses, json({ id, name: 'x' }, 201))).toMatch(/201 is not declared/);
    expect(contractBreach(responses, { kind: 'empty', status: 200 })).toMatch(/empty body where JSON/);
    expect(contractBreach(responses, json({}, 204))).toMatch(/json body where none/);
  });
});

/** Resolves a local `$ref` (`#/components/...`) in the document. */
function resolve(ref: string): unknown {
  if (!ref.startsWith('#/')) return undefined;
  return ref
    .slice(2)
    .split('/')
    .reduce<unknown>((node, key) => (node as Record<string, unknown> | undefined)?.[key], document);
}

/** Ajv for OpenAPI 3.1's dialect (JSON Schema 2020-12), with the formats the document uses. */
function validator() {
  const ajv = new Ajv2020({ strict: false, allErrors: true });
  ajv.addFormat('uuid', /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i);
  ajv.addFormat('date-time', (value: string) => /^\d{4}-\d\d-\d\dT/.test(value) && !Number.isNaN(Date.parse(value)));
  ajv.addFormat('date', /^\d{4}-\d\d-\d\d$/);
  ajv.addFormat('email', /^[^\s@]+@[^\s@]+$/);
  ajv.addFormat('uri', (value: string) => URL.canParse(value));
  return ajv;
}

/** The body schema the document gives `method template` for `status` and the answer's media type. */
function schemaFor(method: string, template: string, status: number, contentType: string): Schema {
  let response = document.paths[template]?.[method.toLowerCase()]?.responses[String(status)];
  if (response?.$ref) response = resolve(response.$ref) as typeof response;
  const media = contentType.split(';')[0]?.trim() as string;
  const schema = response?.content?.[media]?.schema;
  if (!schema) throw new Error(`${method} ${template}: no ${status} ${media} schema in the document`);
  return withComponents(schema);
}

/** The schema with the document's components beside it, so its `#/components/...` references resolve. */
function withComponents(schema: Schema): Schema {
  return { ...schema, components: document.components };
}

async function expectValid(method: string, template: string, response: Response, status = 200): Promise<void> {
  expect(response.status, `${method} ${template}`).toBe(status);
  const body = await response.json();
  const schema = schemaFor(method, template, status, response.headers.get('content-type') ?? '');
  const validate = validator().compile(schema);
  expect(validate(body) ? [] : validate.errors, `${method} ${template} ${status}`).toEqual([]);
}
