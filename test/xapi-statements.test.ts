// The Statement Resource over HTTP: LRS credentials (created by an admin, HTTP Basic, scopes, revocation),
// PUT/POST/GET by id, what the LRS sets (stored, authority, version), immutability (409), batches rejected as a
// whole, validation answers naming the property, a student's own statements only, and nothing readable at rest.
import { createHash, randomUUID } from 'node:crypto';
import postgres from 'postgres';
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';

const app = useTestApp();
let roles: RoleAccounts;
let full: { id: string; key: string; secret: string };
let writeOnly: { id: string; key: string; secret: string };
let mine: { id: string; key: string; secret: string };

const basic = (c: { key: string; secret: string }) => `Basic ${Buffer.from(`${c.key}:${c.secret}`).toString('base64')}`;

function xapi(method: string, path: string, auth: string | null, body?: unknown, headers: Record<string, string> = {}) {
  return app.api(`/xapi${path}`, {
    method,
    headers: {
      'X-Experience-API-Version': '1.0.3',
      ...(auth ? { Authorization: auth } : {}),
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
}

async function credential(scopes: string[]) {
  const response = await send('POST', '/lrs-credentials', { as: roles.admin, body: { label: 'Test package', scopes } });
  expect(response.status).toBe(201);
  return (await response.json()) as { id: string; key: string; secret: string };
}

const statement = (overrides: Record<string, unknown> = {}) => ({
  actor: { objectType: 'Agent', name: 'Ada Learner', mbox: 'mailto:ada.learner@example.org' },
  verb: { id: 'http://adlnet.gov/expapi/verbs/completed', display: { 'en-US': 'completed' } },
  object: {
    id: 'http://example.org/courses/infection-control',
    definition: { name: { 'en-US': 'Infection control' } },
  },
  ...overrides,
});

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
  full = await credential(['all']);
  writeOnly = await credential(['statements/write']);
  mine = await credential(['statements/write', 'statements/read/mine']);
});

describe('LRS credentials', () => {
  test('an admin creates one (secret shown once, stored hashed), lists and revokes it', async () => {
    const created = await credential(['statements/read']);
    expect(created.secret.length).toBeGreaterThanOrEqual(40);
    const listed = await send('GET', '/lrs-credentials?limit=200', { as: roles.admin });
    const body = (await listed.json()) as { items: Record<string, unknown>[] };
    const row = body.items.find((item) => item.id === created.id);
    expect(row).toMatchObject({ key: created.key, scopes: ['statements/read'], revokedAt: null });
    expect(JSON.stringify(body)).not.toContain(created.secret);
    const [stored] = await app.db.sql`select secret_sha256 from lrs_credentials where id = ${created.id}`;
    expect(Buffer.from(stored?.secret_sha256).toString('utf8')).not.toContain(created.secret);
    expect((await xapi('GET', '/statements', basic(created))).status).toBe(200);
    expect((await send('POST', `/lrs-credentials/${created.id}/revoke`, { as: roles.admin })).status).toBe(200);
    expect((await xapi('GET', '/statements', basic(created))).status).toBe(401);
  });

  test('only admins manage credentials; bad scopes are a 400', async () => {
    expect(
      (await send('POST', '/lrs-credentials', { as: roles.staff, body: { label: 'x', scopes: ['all'] } })).status,
    ).toBe(403);
    const bad = await send('POST', '/lrs-credentials', { as: roles.admin, body: { label: 'x', scopes: ['root'] } });
    expect(bad.status).toBe(400);
  });

  test('no credential, a wrong secret or a malformed header is a 401 with the version header', async () => {
    for (const auth of [
      null,
      basic({ key: full.key, secret: 'wrong' }),
      'Basic !!!',
      `Basic ${Buffer.from('nocolon').toString('base64')}`,
    ]) {
      const response = await xapi('GET', '/statements', auth);
      expect(response.status).toBe(401);
      expect(response.headers.get('x-experience-api-version')).toBe('1.0.3');
    }
  });

  test('a scope without reads cannot read; one without writes cannot write', async () => {
    expect((await xapi('GET', '/statements', basic(writeOnly))).status).toBe(403);
    const readOnly = await credential(['statements/read']);
    expect((await xapi('POST', '/statements', basic(readOnly), statement())).status).toBe(403);
  });
});

describe('storing and reading statements', () => {
  test('PUT stores under statementId (204); GET returns it with stored, authority and version set', async () => {
    const id = randomUUID();
    const put = await xapi('PUT', `/statements?statementId=${id}`, basic(full), statement());
    expect(put.status).toBe(204);
    const got = await xapi('GET', `/statements?statementId=${id}`, basic(full));
    expect(got.status).toBe(200);
    expect(got.headers.get('x-experience-api-version')).toBe('1.0.3');
    expect(got.headers.get('x-experience-api-consistent-through')).toBeTruthy();
    expect(got.headers.get('last-modified')).toBeTruthy();
    const body = (await got.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ id, verb: { id: 'http://adlnet.gov/expapi/verbs/completed' }, version: '1.0.0' });
    expect(body.authority).toMatchObject({ objectType: 'Agent', account: { name: full.key } });
    expect(Date.parse(String(body.stored))).toBeGreaterThan(Date.now() - 60_000);
    expect(body.timestamp).toBe(body.stored);
  });

  test('POST of a batch answers the ids in order; a re-post of the same content is fine, other content is a 409', async () => {
    const ids = [randomUUID(), randomUUID()];
    const batch = ids.map((id) => statement({ id }));
    const posted = await xapi('POST', '/statements', basic(full), batch);
    expect(posted.status).toBe(200);
    expect(await posted.json()).toEqual(ids);
    expect((await xapi('POST', '/statements', basic(full), batch)).status).toBe(200);
    const changed = statement({ id: ids[0], verb: { id: 'http://adlnet.gov/expapi/verbs/failed' } });
    expect((await xapi('PUT', `/statements?statementId=${ids[0]}`, basic(full), changed)).status).toBe(409);
    const got = (await (await xapi('GET', `/statements?statementId=${ids[0]}`, basic(full))).json()) as {
      verb: { id: string };
    };
    expect(got.verb.id).toBe('http://adlnet.gov/expapi/verbs/completed');
  });

  test('POST without ids gets new UUIDs; an invalid statement rejects the whole batch', async () => {
    const good = randomUUID();
    const response = await xapi('POST', '/statements', basic(full), [
      statement({ id: good }),
      statement({ verb: { id: 'not an iri' } }),
    ]);
    expect(response.status).toBe(400);
    const problem = (await response.json()) as { errors: { field: string }[] };
    expect(problem.errors[0]?.field).toBe('statements[1].verb.id');
    expect((await xapi('GET', `/statements?statementId=${good}`, basic(full))).status).toBe(404);
    const fresh = (await (await xapi('POST', '/statements', basic(full), statement())).json()) as string[];
    expect(fresh[0]).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('ugly input: malformed JSON, nulls, unknown properties, two IFIs, bad timestamps, a huge id, SQL', async () => {
    const cases: unknown[] = [
      '{"actor": ',
      statement({ result: null }),
      statement({ colour: 'blue' }),
      statement({ actor: { mbox: 'mailto:a@example.org', openid: 'http://example.org/a' } }),
      statement({ timestamp: '2026-02-30T10:00:00Z' }),
      statement({ timestamp: '2026-01-01T10:00:00-00:00' }),
      statement({ id: `${'1'.repeat(5000)}` }),
      statement({ verb: { id: "http://x/'; drop table xapi_statements; --", display: { 'en-US': '<script>' } } }),
      statement({ result: { score: { scaled: 2 } } }),
      statement({ context: { revision: '1' }, object: { objectType: 'Agent', mbox: 'mailto:b@example.org' } }),
      statement({ verb: { id: 'http://adlnet.gov/expapi/verbs/voided' } }),
    ];
    for (const body of cases) {
      const response = await xapi('POST', '/statements', basic(full), body);
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(await response.text()).not.toMatch(/PostgresError|at .*\.ts:/);
    }
    expect((await xapi('GET', '/statements?statementId=not-a-uuid', basic(full))).status).toBe(400);
  });

  test('without the version header a request is a 400; with 1.0.x it is answered in 1.0.3, 2.0 in 2.0.0', async () => {
    expect((await xapi('GET', '/statements', basic(full), undefined, { 'X-Experience-API-Version': '' })).status).toBe(
      400,
    );
    const legacy = await xapi('GET', '/statements?limit=1', basic(full), undefined, {
      'X-Experience-API-Version': '1.0.x',
    });
    expect(legacy.headers.get('x-experience-api-version')).toBe('1.0.3');
    const modern = await xapi('GET', '/statements?limit=1', basic(full), undefined, {
      'X-Experience-API-Version': '2.0.0',
    });
    expect(modern.headers.get('x-experience-api-version')).toBe('2.0.0');
  });

  test('statements/read/mine reads only what its own credential stored', async () => {
    const own = randomUUID();
    const other = randomUUID();
    await xapi('PUT', `/statements?statementId=${own}`, basic(mine), statement());
    await xapi('PUT', `/statements?statementId=${other}`, basic(full), statement());
    expect((await xapi('GET', `/statements?statementId=${own}`, basic(mine))).status).toBe(200);
    expect((await xapi('GET', `/statements?statementId=${other}`, basic(mine))).status).toBe(404);
  });

  test('a student token writes and reads only statements about themselves', async () => {
    const student = roles.student;
    const me = { objectType: 'Agent', account: { homePage: 'http://localhost:5173', name: student.id } };
    const id = randomUUID();
    const auth = student.headers.Authorization as string;
    expect((await xapi('PUT', `/statements?statementId=${id}`, auth, statement({ actor: me }))).status).toBe(204);
    expect((await xapi('POST', '/statements', auth, statement())).status).toBe(403);
    expect((await xapi('GET', `/statements?statementId=${id}`, auth)).status).toBe(200);
    const someoneElse = randomUUID();
    await xapi('PUT', `/statements?statementId=${someoneElse}`, basic(full), statement());
    expect((await xapi('GET', `/statements?statementId=${someoneElse}`, auth)).status).toBe(404);
    expect((await xapi('GET', '/statements', roles.finance.headers.Authorization as string)).status).toBe(403);
  });

  test('no agent, name or email is readable in the statement tables, and reads are audited', async () => {
    const dump = await app.db.sql`
      select coalesce(string_agg(t::text, ' '), '') as text from (
        select * from xapi_statements union all select null, null, null, null, null, null, null, null, null, null
      ) t`;
    expect(String(dump[0]?.text)).not.toMatch(/ada\.learner|Ada Learner/);
    const audited = await app.db.sql`
      select count(*)::int as n from audit_log where route = 'xapi/statements' and method = 'GET' and phi`;
    expect(audited[0]?.n).toBeGreaterThan(0);
  });

  test('an attachment with a fileUrl whose bytes were sent as a part comes back with them (XAPI-00161)', async () => {
    const bytes = `handout ${randomUUID()} é`;
    const sha2 = createHash('sha256').update(bytes).digest('hex');
    const withUrl = {
      usageType: 'http://example.org/handout',
      display: { 'en-US': 'Handout' },
      contentType: 'text/plain',
      length: Buffer.byteLength(bytes),
      sha2,
      fileUrl: 'http://example.org/handout.txt',
    };
    const sentId = randomUUID();
    const sent = statement({ id: sentId, attachments: [withUrl] });
    const boundary = `b-${randomUUID()}`;
    const body =
      `--${boundary}\r\nContent-Type: application/json\r\n\r\n${JSON.stringify(sent)}\r\n` +
      `--${boundary}\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: binary\r\n` +
      `X-Experience-API-Hash: ${sha2}\r\n\r\n${bytes}\r\n--${boundary}--\r\n`;
    const posted = await xapi('POST', '/statements', basic(full), body, {
      'Content-Type': `multipart/mixed; boundary=${boundary}`,
    });
    expect(posted.status, await posted.clone().text()).toBe(200);
    const plain = await xapi('GET', `/statements?statementId=${sentId}&attachments=false`, basic(full));
    expect(plain.headers.get('content-type')).toMatch(/^application\/json/);
    const got = await xapi('GET', `/statements?statementId=${sentId}&attachments=true`, basic(full));
    expect(got.headers.get('content-type')).toMatch(/^multipart\/mixed; boundary=/);
    const text = await got.text();
    expect(text).toContain(`X-Experience-API-Hash: ${sha2}`);
    expect(text).toContain(bytes);

    // The same fileUrl attachment sent without its bytes (JSON only) does not reach the bytes stored above.
    const urlOnlyId = randomUUID();
    const urlOnly = statement({ id: urlOnlyId, attachments: [withUrl] });
    expect((await xapi('POST', '/statements', basic(full), urlOnly)).status).toBe(200);
    const bare = await xapi('GET', `/statements?statementId=${urlOnlyId}&attachments=true`, basic(full));
    expect(bare.headers.get('content-type')).toMatch(/^multipart\/mixed; boundary=/);
    const bareText = await bare.text();
    expect(bareText).toContain(urlOnlyId);
    expect(bareText).not.toContain(bytes);
  });

  test('Consistent-Through is no later than the start of a statement write still in flight', async () => {
    const idle = await xapi('GET', '/statements?limit=1', basic(full));
    expect(Date.parse(idle.headers.get('x-experience-api-consistent-through') ?? '')).not.toBeNaN();
    // A write transaction of another instance, open (marked as lib/xapi-statements.ts marks its writes), on
    // the app's own database role as every instance is (pg_stat_activity shows a role its own sessions).
    const instance = postgres(process.env.DATABASE_URL as string, { max: 1, onnotice: () => {} });
    try {
      await instance.begin(async (tx) => {
        await tx`select set_config('application_name', 'aada-xapi-statement-write', true)`;
        const [row] = await tx<{ started: Date }[]>`select now() as started`;
        const read = await xapi('GET', '/statements?limit=1', basic(full));
        const through = Date.parse(read.headers.get('x-experience-api-consistent-through') ?? '');
        expect(through).toBeLessThanOrEqual(new Date(row?.started ?? 0).getTime());
      });
    } finally {
      await instance.end();
    }
    const after = await xapi('GET', '/statements?limit=1', basic(full));
    expect(Date.parse(after.headers.get('x-experience-api-consistent-through') ?? '')).toBeGreaterThan(
      Date.parse(idle.headers.get('x-experience-api-consistent-through') ?? ''),
    );
  });

  test('About is open and lists both versions', async () => {
    const about = await app.api('/xapi/about');
    expect(about.status).toBe(200);
    expect(await about.json()).toMatchObject({ version: ['1.0.3', '2.0.0'] });
  });
});
