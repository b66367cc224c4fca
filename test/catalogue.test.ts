// The public catalogue and the health probes, over HTTP, on the demo data.
import { beforeAll, describe, expect, test } from 'vitest';
import { seedDemoData } from '../dev/seed';
import { useTestApp } from './helpers/app';
import { useStatementCounter } from './helpers/statements';

const app = useTestApp();
// Statements are counted on the wire, between the app's pool and the server (helpers/statements.ts).
const counter = useStatementCounter();

beforeAll(async () => {
  await seedDemoData(app.db.sql);
});

interface Program {
  id: string;
  code: string;
  name: string;
  totalClockHours: number;
}

describe('the public catalogue', () => {
  test('lists active programmes, publicly cacheable with an ETag', async () => {
    const response = await app.api('/programs');
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('public, max-age=300');
    expect(response.headers.get('etag')).toBeTruthy();
    const body = (await response.json()) as { items: Program[]; next: string | null };
    expect(body.items.map((program) => program.code)).toEqual(['DA-20W', 'EFDA']);
    expect(body.next).toBeNull();
    expect(body.items[0]?.totalClockHours).toBe(480);
  });

  test('pages by cursor with a Link header, and a retired programme disappears', async () => {
    await app.db.sql`insert into programs (code, name, credential_level, total_clock_hours, status)
                     values ('ZZ-OLD', 'Retired programme', 'certificate', 10, 'retired')`;
    const first = await app.api('/programs?limit=1');
    const page1 = (await first.json()) as { items: Program[]; next: string };
    expect(page1.items).toHaveLength(1);
    expect(first.headers.get('link')).toBe(`</api/programs?limit=1&cursor=${page1.next}>; rel="next"`);
    const second = await app.api(`/programs?limit=1&cursor=${page1.next}`);
    const page2 = (await second.json()) as { items: Program[]; next: string | null };
    expect(page2.items.map((program) => program.code)).toEqual(['EFDA']);
    expect(page2.next).toBeNull();
  });

  test('rejects an invalid limit or cursor with a 400 naming the field', async () => {
    for (const [query, field] of [
      ['limit=0', 'query.limit'],
      ['limit=100000', 'query.limit'],
      ['limit=abc', 'query.limit'],
      ['cursor=not-a-cursor', 'query.cursor'],
      [`cursor=${Buffer.from('[1,2,3]').toString('base64url')}`, 'query.cursor'],
    ] as const) {
      const response = await app.api(`/programs?${query}`);
      expect(response.status, query).toBe(400);
      const body = (await response.json()) as { errors: { field: string }[] };
      expect(body.errors.map((error) => error.field)).toContain(field);
    }
  });

  test('one programme with its modules in order; 304 on revalidation', async () => {
    const list = (await (await app.api('/programs')).json()) as { items: Program[] };
    const da = list.items.find((program) => program.code === 'DA-20W') as Program;
    const response = await app.api(`/programs/${da.id}`);
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('public, max-age=300');
    const body = (await response.json()) as { modules: { code: string; position: number; clockHours: number }[] };
    expect(body.modules.map((module) => module.code)).toEqual(['DA101', 'DA102', 'DA103', 'DA104', 'DA105', 'DA106']);
    expect(body.modules.map((module) => module.position)).toEqual([1, 2, 3, 4, 5, 6]);
    const again = await app.api(`/programs/${da.id}`, {
      headers: { 'If-None-Match': response.headers.get('etag') as string },
    });
    expect(again.status).toBe(304);
  });

  test('a revalidation reads only the catalogue version; any change to a programme or module ends it', async () => {
    const first = await app.api('/programs');
    const tag = first.headers.get('etag') as string;
    expect(tag).toMatch(/^"v[\w-]+"$/);
    const page = (await first.json()) as { items: Program[] };
    const revalidate = (path: string, etag: string) => app.api(path, { headers: { 'If-None-Match': etag } });

    // The 304 comes without reading the programmes at all: with them unreadable, it still comes.
    await app.db.sql`revoke select on programs from aada_app`;
    try {
      const before = counter.count;
      const unchanged = await revalidate('/programs', tag);
      expect(unchanged.status).toBe(304);
      expect(unchanged.headers.get('etag')).toBe(tag);
      expect(unchanged.headers.get('cache-control')).toBe('public, max-age=300');
      expect(counter.count - before).toBe(1);
      expect((await app.api('/programs')).status).toBe(500);
    } finally {
      await app.db.sql`grant select on programs to aada_app`;
    }
    // Each page of the list has its own tag.
    expect((await revalidate('/programs?limit=1', tag)).status).toBe(200);

    const da = page.items.find((program) => program.code === 'DA-20W') as Program;
    const single = await app.api(`/programs/${da.id}`);
    const singleTag = single.headers.get('etag') as string;
    await app.db
      .sql`update modules set title = 'Infection Control, revised' where program_id = ${da.id} and code = 'DA102'`;
    const changed = await revalidate(`/programs/${da.id}`, singleTag);
    expect(changed.status).toBe(200);
    expect(changed.headers.get('etag')).not.toBe(singleTag);
    const body = (await changed.json()) as { modules: { code: string; title: string }[] };
    expect(body.modules.find((module) => module.code === 'DA102')?.title).toBe('Infection Control, revised');
    // The list's tag changed with it, though its own rows did not: one version for the catalogue.
    expect((await revalidate('/programs', tag)).status).toBe(200);
  });

  test('an unknown or malformed id', async () => {
    expect((await app.api('/programs/6f1c1d4e-1111-4111-8111-111111111111')).status).toBe(404);
    const malformed = await app.api("/programs/1'%20or%20'1'='1");
    expect(malformed.status).toBe(400);
  });
});

describe('health', () => {
  test('liveness answers without the database; readiness reports database, migrations and pool', async () => {
    const live = await app.api('/health');
    expect(live.status).toBe(200);
    expect(live.headers.get('cache-control')).toBe('no-store');
    const ready = await app.api('/health/ready');
    expect(ready.status).toBe(200);
    const body = (await ready.json()) as { status: string; migrations: { pending: string[] }; pool: { max: number } };
    expect(body.status).toBe('ready');
    expect(body.migrations.pending).toEqual([]);
    expect(body.pool.max).toBeGreaterThanOrEqual(1);
  });
});

describe('the OpenAPI document', () => {
  test('is generated from the route table and the validating schemas', async () => {
    const response = await app.api('/openapi.json');
    expect(response.status).toBe(200);
    expect(response.headers.get('cache-control')).toBe('public, max-age=300');
    const document = (await response.json()) as {
      openapi: string;
      paths: Record<
        string,
        Record<string, { parameters: { name: string; in: string; schema: { maximum?: number } }[] }>
      >;
    };
    expect(document.openapi).toBe('3.1.0');
    const list = document.paths['/api/programs']?.get;
    const limit = list?.parameters.find((parameter) => parameter.name === 'limit');
    expect(limit).toMatchObject({ in: 'query', schema: { maximum: 200 } });
    const one = document.paths['/api/programs/{id}']?.get;
    expect(one?.parameters).toEqual([expect.objectContaining({ name: 'id', in: 'path', required: true })]);
  });

  test('groups operations by area, summarises each, and says how each is authenticated', async () => {
    type Operation = { summary: string; tags: string[]; description: string; security: object[] };
    const document = (await (await app.api('/openapi.json')).json()) as {
      servers: { url: string }[];
      tags: { name: string }[];
      paths: Record<string, Record<string, Operation>>;
      components: { securitySchemes: Record<string, { type: string; in?: string; name?: string }> };
    };
    expect(document.servers).toEqual([{ url: '/' }]);
    const operations = Object.values(document.paths).flatMap((methods) => Object.values(methods));
    const tagNames = document.tags.map((tag) => tag.name);
    for (const operation of operations) {
      expect(operation.summary.length).toBeGreaterThan(2);
      expect(tagNames).toContain(operation.tags[0]);
    }
    expect(document.paths['/api/students/{id}']?.get?.tags).toEqual(['students']);
    // Cookie sign-in must send the CSRF header on unsafe methods; Bearer needs nothing else.
    expect(document.components.securitySchemes.csrf).toMatchObject({
      type: 'apiKey',
      in: 'header',
      name: 'X-CSRF-Token',
    });
    expect(document.paths['/api/students']?.post?.security).toEqual([{ bearer: [] }, { cookie: [], csrf: [] }]);
    expect(document.paths['/api/students']?.get?.security).toEqual([{ bearer: [] }, { cookie: [] }]);
    // Refresh and logout are not "Public": the refresh token (body or cookie) authenticates them.
    const refresh = document.paths['/api/auth/refresh']?.post;
    expect(refresh?.description).not.toContain('Public');
    expect(refresh?.security).toEqual([{}, { refreshCookie: [], csrf: [] }]);
    expect(document.components.securitySchemes.refreshCookie).toMatchObject({
      in: 'cookie',
      name: '__Secure-aada-refresh',
    });
    expect(document.paths['/api/auth/login']?.post?.security).toEqual([]);
  });
});
