// Every list's cursor, fuzzed. For every route of the route table whose query schema (or search
// body) has a `cursor`, called as a role the route allows: random strings, random base64url JSON and
// tampered real cursors (taken from a real page, then mutated) are each a 400 problem naming the
// cursor field; never a 500, never a page. A real cursor still gives 200, before and after.
//
// Nothing here lists routes: they come from declaredRoutes(), so a list added anywhere is fuzzed the
// day it lands. A tampered cursor must be a forgery, not another valid position: a cursor whose values
// are merely different (another timestamp, another programme code) is a place in the list, and 200 is
// right for it. So each mutation breaks the key's shape: a value of the wrong type, a calendar date
// that does not exist, a control character, a uuid or id that is no longer one, a wrong number of
// values, a broken encoding.
//
// lib/endpoint and the function modules are imported after the app booted (see
// authorization-matrix.test.ts), so the route table is read inside beforeAll.
import fc from 'fast-check';
import { beforeAll, describe, expect, test } from 'vitest';
import { z } from 'zod';
import type { Role } from '../lib/access';
import type { DeclaredRoute } from '../lib/endpoint';
import { insertCompletedAgreement } from './helpers/agreements';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { insertLedger } from './helpers/ledger';
import { createComplianceRecords, createEnrollment, createProgram, recordAttendance } from './helpers/records';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

/** Tries per kind of input per list: about 40 requests a list, a few seconds for all lists on an idle machine. */
const RUNS = 8;

interface ListUnderTest {
  label: string;
  method: 'GET' | 'POST';
  path: string;
  where: 'query' | 'body';
  headers: Record<string, string>;
  /** A cursor a real page of this list handed out. */
  realCursor: string;
}

/** The object shape behind a schema (a transformed object is a pipe whose input is the object). */
function shapeOf(schema: z.ZodType | undefined): Record<string, unknown> | undefined {
  if (schema instanceof z.ZodObject) return schema.shape;
  if (schema instanceof z.ZodPipe) return shapeOf(schema.in as z.ZodType);
  return undefined;
}

/** The caller: an administrator where the route allows one, else its first role; anonymous if public. */
function roleFor(route: DeclaredRoute): Role | null {
  if (route.access === 'public') return null;
  return route.access.includes('admin') ? 'admin' : (route.access[0] as Role);
}

const b64url = (text: string) => Buffer.from(text).toString('base64url');
const decoded = (cursor: string): string[] => JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));

let lists: ListUnderTest[] = [];

async function call(list: ListUnderTest, cursor: unknown, limit = 1): Promise<Response> {
  if (list.where === 'body') {
    return app.api(list.path, {
      method: 'POST',
      headers: { ...list.headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ limit, cursor }),
    });
  }
  const query = cursor === undefined ? '' : `&cursor=${encodeURIComponent(String(cursor))}`;
  return app.api(`${list.path}?limit=${limit}${query}`, { headers: list.headers });
}

async function firstPageCursor(list: Omit<ListUnderTest, 'realCursor'>): Promise<string> {
  const response = await call({ ...list, realCursor: '' }, undefined);
  expect(response.status, `${list.label} first page`).toBe(200);
  const { next } = (await response.json()) as { next: string | null };
  expect(next, `${list.label} has a second page`).toEqual(expect.any(String));
  return next as string;
}

/** What a refused cursor must look like: a 400 problem naming the cursor field, and nothing served. */
async function expectRefused(list: ListUnderTest, cursor: unknown): Promise<void> {
  const response = await call(list, cursor);
  const text = await response.text();
  const context = `${list.label} with cursor ${JSON.stringify(cursor)}: ${response.status} ${text.slice(0, 300)}`;
  expect(response.status, context).toBe(400);
  expect(response.headers.get('content-type'), context).toContain('application/problem+json');
  const fields = ((JSON.parse(text) as { errors?: { field: string }[] }).errors ?? []).map((error) => error.field);
  expect(fields, context).toContain(`${list.where}.cursor`);
}

/** The school day `days` before today (America/New_York), as YYYY-MM-DD. */
const daysAgo = (days: number) =>
  new Intl.DateTimeFormat('en-CA', { timeZone: 'America/New_York' }).format(new Date(Date.now() - days * 86_400_000));

beforeAll(async () => {
  const sql = app.db.sql;
  const admin = await createTestUser(sql, { roles: ['admin'] });
  // Two of everything a list shows, so every list has a second page and so a real cursor.
  const students: TestUser[] = [];
  for (let i = 0; i < 2; i++) students.push(await createTestUser(sql, { roles: ['student'] }));
  const fuzzModules: string[] = [];
  const fuzzEnrollments: { studentId: string; enrollmentId: string }[] = [];
  for (const [i, code] of ['FUZZ-A', 'FUZZ-B'].entries()) {
    const { programId, moduleIds } = await createProgram(sql, { code, hours: [10], modulePrefix: `FZ${i}-` });
    fuzzModules.push(moduleIds[0] as string);
    const absences = [];
    for (const student of students) {
      const enrollmentId = await createEnrollment(sql, student.id, programId);
      fuzzEnrollments.push({ studentId: student.id, enrollmentId });
      absences.push({ userId: student.id, enrollmentId, status: 'absent' });
      await createComplianceRecords(sql, {
        userId: student.id,
        enrollmentId,
        moduleId: moduleIds[0] as string,
        by: admin.id,
      });
      await sql`
        insert into credentials (user_id, program_id, credential_type, cert_serial, issued_by)
        values (${student.id}, ${programId}, 'certificate', ${`FUZZ-${code}-${student.id}`}, ${admin.id})`;
    }
    await recordAttendance(sql, { moduleId: moduleIds[0] as string, recordedBy: admin.id, lines: absences });
  }
  // Two entries on the admin's own ledger: the ledger history is listed for the path's account.
  for (const cents of [100, 200]) {
    await sql`insert into ledger_entries (user_id, kind, category, direction, amount_cents, posted_by)
              values (${admin.id}, 'charge', 'fee', 'debit', ${cents}, ${admin.id})`;
  }
  // Two LRS credentials (lib/xapi-credentials.ts).
  const { createCredential } = await import('../lib/xapi-credentials');
  for (const label of ['Fuzz package A', 'Fuzz package B'])
    await createCredential(sql, { label, scopes: ['all'] }, admin.id);
  // Two versions of a lesson (lib/lessons.ts), listed for the module in the path.
  for (const title of ['Fuzz lesson', 'Fuzz lesson, revised']) {
    const saved = await send('POST', `/modules/${fuzzModules[0]}/lesson/versions`, {
      as: admin,
      body: { title, markdown: `# ${title}` },
    });
    expect(saved.status, 'a lesson version saved').toBe(201);
  }
  // Two agreements (lib/agreements.ts), listed for agreement staff.
  for (const student of students) await insertCompletedAgreement(sql, student.id);
  // Two leads (lib/leads.ts), listed for admissions.
  const { emailBlindIndex, encrypt } = await import('../lib/crypto');
  for (const n of [1, 2]) {
    const email = `fuzz.lead${n}@example.test`;
    await sql`insert into leads (first_name_ciphertext, last_name_ciphertext, email_ciphertext, email_blind_index)
              values (${encrypt('Fuzz', 'leads.first_name')}, ${encrypt(`Lead${n}`, 'leads.last_name')},
                      ${encrypt(email, 'leads.email')}, ${emailBlindIndex(email)})`;
  }
  // Two refunds due (lib/refunds.ts): two paid enrollments of FUZZ-B withdrawn.
  for (const { studentId, enrollmentId } of fuzzEnrollments.slice(2)) {
    await sql`update enrollments set created_at = now() - interval '60 days' where id = ${enrollmentId}`;
    await insertLedger(
      sql,
      [
        { studentId, enrollmentId, kind: 'charge', amountCents: 100_000 },
        { studentId, enrollmentId, kind: 'payment', amountCents: 100_000 },
      ],
      admin.id,
    );
    const withdrawn = await send('POST', `/enrollments/${enrollmentId}/withdrawal`, {
      as: admin,
      // Determined 40 days ago: due in 5, inside the list's default window of 14 days.
      body: { kind: 'unofficial', reason: 'Fuzz withdrawal', determinedOn: daysAgo(40) },
    });
    expect(withdrawn.status, `a withdrawal recorded: ${await withdrawn.clone().text()}`).toBe(201);
  }

  // A path parameter names a record with rows behind it where one exists, else the caller's own id.
  const pathIds: Record<string, string> = { moduleId: fuzzModules[0] as string };
  const tokens = new Map<Role, TestUser>([['admin', admin]]);
  const headersFor = async (role: Role | null) => {
    if (role === null) return {};
    if (!tokens.has(role)) tokens.set(role, await createTestUser(sql, { roles: [role] }));
    return (tokens.get(role) as TestUser).headers;
  };

  const { declaredRoutes } = await import('../lib/endpoint');
  const candidates: Omit<ListUnderTest, 'realCursor'>[] = [];
  for (const route of declaredRoutes()) {
    // Path parameters are the caller's own id: their activity is a list with rows in it.
    const path = `/${route.route.replace(/\{([^}:]+)[^}]*\}/g, (_, name: string) => pathIds[name] ?? admin.id)}`;
    const headers = await headersFor(roleFor(route));
    if (route.methods.includes('GET') && shapeOf(route.schemas.query)?.cursor) {
      candidates.push({ label: `GET ${route.route}`, method: 'GET', path, where: 'query', headers });
    }
    if (route.methods.includes('POST') && shapeOf(route.schemas.body)?.cursor) {
      candidates.push({ label: `POST ${route.route}`, method: 'POST', path, where: 'body', headers });
    }
  }
  // Audit lists fill from these very requests: one round first, so each has two rows.
  for (const list of candidates) await call({ ...list, realCursor: '' }, undefined);
  lists = [];
  for (const list of candidates) lists.push({ ...list, realCursor: await firstPageCursor(list) });
}, 120_000);

// ---------------------------------------------------------------------------------------------------
// What is thrown at each list
// ---------------------------------------------------------------------------------------------------

const CONTROL = fc.constantFrom('\u0000', '\u0001', '\u0007', '\u001b', '\u007f', '\u0085', '\n');

/** Any text at all, up to past the cursor's length bound. */
const randomText = fc.string({ unit: 'binary', maxLength: 600 });

/** Arrays of one to three strings without control characters may be a real position of a text-keyed list. */
const mayBePosition = (value: unknown) =>
  Array.isArray(value) &&
  value.length >= 1 &&
  value.length <= 3 &&
  value.every((part) => typeof part === 'string' && !/\p{Cc}/u.test(part));

/** base64url of random JSON: objects, numbers, nested arrays, strings with control characters… */
const randomJsonCursor = fc
  .oneof(
    fc.jsonValue(),
    fc.array(
      fc.tuple(fc.string(), CONTROL, fc.string()).map((parts) => parts.join('')),
      {
        minLength: 1,
        maxLength: 3,
      },
    ),
  )
  .filter((value) => !mayBePosition(value))
  .map((value) => b64url(JSON.stringify(value)));

/** A timestamp-shaped value whose calendar does not exist (month 13, 31 February, hour 24, year 0). */
const impossibleInstant = fc
  .record({
    year: fc.integer({ min: 0, max: 9999 }),
    month: fc.integer({ min: 1, max: 12 }),
    day: fc.integer({ min: 1, max: 28 }),
    broken: fc.constantFrom('year', 'month', 'day', 'hour', 'minute', 'second', 'february'),
    bad: fc.integer({ min: 0, max: 99 }),
  })
  .map(({ year, month, day, broken, bad }) => {
    const two = (n: number) => String(n).padStart(2, '0');
    const parts = { year: String(year).padStart(4, '0'), month: two(month), day: two(day), h: '12', m: '30', s: '45' };
    if (broken === 'year') parts.year = '0000';
    if (broken === 'month') parts.month = two(13 + (bad % 87));
    if (broken === 'day') parts.day = two(32 + (bad % 68));
    if (broken === 'hour') parts.h = two(24 + (bad % 76));
    if (broken === 'minute') parts.m = two(60 + (bad % 40));
    if (broken === 'second') parts.s = two(60 + (bad % 40));
    if (broken === 'february') [parts.month, parts.day] = ['02', '30'];
    return `${parts.year}-${parts.month}-${parts.day}T${parts.h}:${parts.m}:${parts.s}.000000Z`;
  });

const TIMESTAMP = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const DIGITS = /^\d+$/;

/** Replacements for one value of a real key that no key kind accepts, chosen by the value's shape. */
function brokenValue(value: string): fc.Arbitrary<unknown> {
  const anyShape: fc.Arbitrary<unknown>[] = [
    fc.constantFrom(null, true, 0, 12, -1, 1.5, {}, [], [value]),
    fc.constant(''),
    fc
      .tuple(fc.nat({ max: value.length }), CONTROL)
      .map(([at, control]) => value.slice(0, at) + control + value.slice(at)),
    fc.constant(value.repeat(Math.ceil(201 / Math.max(1, value.length)))),
  ];
  if (TIMESTAMP.test(value)) {
    anyShape.push(
      impossibleInstant,
      fc.constantFrom(value.slice(0, 19), `${value.slice(0, 23)}Z`, value.replace('T', ' ')),
    );
  }
  if (UUID.test(value)) {
    anyShape.push(
      fc
        .tuple(fc.nat({ max: value.length - 1 }), fc.constantFrom('g', 'z', '-', ' ', "'"))
        .map(([at, char]) => value.slice(0, at) + char + value.slice(at + 1))
        .filter((mutated) => mutated !== value),
      fc.constantFrom(value.slice(1), `${value}0`, value.replaceAll('-', '')),
    );
  }
  if (DIGITS.test(value)) {
    anyShape.push(
      fc.constantFrom('0', `-${value}`, `0${value}`, `${value} or 1=1`, '9223372036854775808', `${value}.5`),
    );
  }
  return fc.oneof(...anyShape);
}

/** A real cursor of `list`, tampered with so that it is no longer a cursor of any list. */
function tampered(list: ListUnderTest): fc.Arbitrary<string> {
  const real = list.realCursor;
  const key = decoded(real);
  const replaceOne = fc
    .nat({ max: key.length - 1 })
    .chain((index) =>
      brokenValue(key[index] as string).map((value) => key.map((part, i) => (i === index ? value : part))),
    )
    .map((mutated) => b64url(JSON.stringify(mutated)));
  const reshaped = fc
    .constantFrom<unknown>([], key.slice(0, -1), [...key, key[0]], { key }, key.join(','), [key])
    .filter((value) => !(Array.isArray(value) && value.length === key.length && value.every((v, i) => v === key[i])))
    .map((value) => b64url(JSON.stringify(value)));
  const standard = Buffer.from(JSON.stringify(key)).toString('base64');
  const encoding = fc.oneof(
    // Cut short: the closing bracket goes, so it is no JSON any more.
    fc.nat({ max: real.length - 1 }).map((keep) => real.slice(0, keep)),
    // A character outside the base64url alphabet, which a lenient decoder would skip.
    fc
      .tuple(fc.nat({ max: real.length }), fc.constantFrom('+', '/', '=', '.', '~', ' ', '!', '\u00e9'))
      .map(([at, char]) => real.slice(0, at) + char + real.slice(at)),
    // The same bytes with padding, or as standard base64: not the encoding this API hands out.
    fc.constantFrom(`${real}==`, standard === real ? `${real}=` : standard),
  );
  return fc.oneof(replaceOne, reshaped, encoding);
}

// ---------------------------------------------------------------------------------------------------
// The properties
// ---------------------------------------------------------------------------------------------------

describe('every list refuses a cursor it did not hand out', () => {
  test('the route table has lists with cursors, and each real cursor serves a page', async () => {
    expect(lists.length).toBeGreaterThanOrEqual(5);
    for (const list of lists) expect((await call(list, list.realCursor)).status, list.label).toBe(200);
  });

  test('random strings, random base64url JSON and tampered real cursors are each a 400 naming the cursor', async () => {
    const started = performance.now();
    // Lists in parallel, each list's tries one after another; every list's outcome is reported.
    const outcomes = await Promise.allSettled(
      lists.map(async (list) => {
        await fc.assert(
          fc.asyncProperty(randomText, (cursor) => expectRefused(list, cursor)),
          { numRuns: RUNS },
        );
        await fc.assert(
          fc.asyncProperty(randomJsonCursor, (cursor) => expectRefused(list, cursor)),
          { numRuns: RUNS },
        );
        await fc.assert(
          fc.asyncProperty(tampered(list), (cursor) => expectRefused(list, cursor)),
          { numRuns: RUNS * 2 },
        );
        if (list.where === 'body') {
          // A body can send what a query string cannot: a cursor that is not a string at all.
          await fc.assert(
            fc.asyncProperty(
              fc.jsonValue().filter((value) => typeof value !== 'string'),
              (cursor) => expectRefused(list, cursor),
            ),
            { numRuns: RUNS },
          );
        }
      }),
    );
    const failed = outcomes.flatMap((outcome, i) =>
      outcome.status === 'rejected'
        ? [`${lists[i]?.label}: ${String(outcome.reason).split('\n').slice(0, 8).join('\n')}`]
        : [],
    );
    expect(failed, failed.join('\n\n')).toEqual([]);
    const seconds = (performance.now() - started) / 1000;
    console.log(`cursor fuzz: ${lists.length} lists, about ${RUNS * 4} cursors each, ${seconds.toFixed(1)} s`);
    // And the real cursors still work afterwards.
    for (const list of lists) expect((await call(list, list.realCursor)).status, list.label).toBe(200);
  }, 120_000);
});
