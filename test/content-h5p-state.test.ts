// A reader's state in an H5P activity (lib/h5p-state.ts) over HTTP: the player page's grant names the
// reader it was issued to; under it the page saves that reader's state (a text/plain POST, as a sandboxed
// frame sends it, answered without CORS) and the page, served again, carries it back. It is stored
// encrypted; every save and page is audited under the reader. Another reader's page carries their own;
// a grant whose reader was changed, a tampered, forged or expired one, an asset grant, another
// activity's, a retired activity's are refused. Bad bodies (not JSON, a state that is not a string of
// JSON, a lone surrogate, too long, extra fields) are a 400 naming the field and change nothing.
import { createHmac } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment, createProgram, type TestProgram } from './helpers/records';
import { createTestUser, type TestUser } from './helpers/users';
import { minimalH5p } from './helpers/zip';

const app = useTestApp();

let program: TestProgram;
let instructor: TestUser;
let student: TestUser;
let classmate: TestUser;

const moduleId = () => program.moduleIds[0] as string;
const DEMO_KEY = Buffer.from('ZGVtby1vbmx5LWg1cC1hc3NldC1rZXktZG8tbm90LXVzZQ==', 'base64');

beforeAll(async () => {
  const sql = app.db.sql;
  program = await createProgram(sql, { hours: [10] });
  instructor = await createTestUser(sql, { roles: ['instructor'] });
  await assignInstructor(sql, instructor.id, program.programId);
  student = await createTestUser(sql, { roles: ['student'] });
  await createEnrollment(sql, student.id, program.programId);
  classmate = await createTestUser(sql, { roles: ['student'] });
  await createEnrollment(sql, classmate.id, program.programId);
  const uploaded = await app.api(`/modules/${moduleId()}/h5p/state-quiz`, {
    method: 'PUT',
    headers: { ...instructor.headers, 'Content-Type': 'application/zip' },
    body: minimalH5p('State quiz'),
  });
  expect(uploaded.status, await uploaded.clone().text()).toBe(201);
});

/** The reader's player page (its path without `/api`), as the lesson or the activity route gives it. */
async function playerPathOf(as: TestUser, key = 'state-quiz'): Promise<string> {
  const opened = await send('GET', `/modules/${moduleId()}/h5p/${key}`, { as });
  expect(opened.status).toBe(200);
  return ((await opened.json()) as { playerUrl: string }).playerUrl.replace(/^\/api/, '');
}

const unescapeAttribute = (value: string) =>
  value.replaceAll('&quot;', '"').replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');

/** The page as the frame loads it (no credential): its state address and the state it carries. */
async function openPage(path: string): Promise<{ status: number; stateAddress: string; previousState: string | null }> {
  const page = await app.api(path, { headers: { Origin: 'null' } });
  const html = await page.text();
  const address = /data-state="\/api(\/h5p-state\/[^"]+)"/.exec(html)?.[1] ?? '';
  const previous = /data-previous-state="([^"]*)"/.exec(html)?.[1];
  return {
    status: page.status,
    stateAddress: address,
    previousState: previous === undefined ? null : unescapeAttribute(previous),
  };
}

async function stateAddressOf(as: TestUser, key = 'state-quiz'): Promise<string> {
  const page = await openPage(await playerPathOf(as, key));
  expect(page.status).toBe(200);
  return page.stateAddress;
}

/** What the reader's page carries now. */
const savedStateOf = async (as: TestUser) => (await openPage(await playerPathOf(as))).previousState;

/** As the player page sends it: no credential, `Origin: null`, a text/plain body. */
const saveState = (address: string, body: string) =>
  app.api(address, { method: 'POST', headers: { Origin: 'null', 'Content-Type': 'text/plain' }, body });

const stored = async (userId: string) =>
  app.db.sql<{ state_ciphertext: string }[]>`
    select state_ciphertext from h5p_user_states where user_id = ${userId}`;

describe("a reader's state in an activity", () => {
  test('is saved under the page grant and carried by the page again, encrypted, audited under the reader', async () => {
    const path = await playerPathOf(student);
    const first = await openPage(path);
    expect(first.status).toBe(200);
    expect(first.stateAddress).toBe(path.replace('/h5p-player/', '/h5p-state/'));
    expect(first.previousState).toBeNull();

    // A student's own words, unicode, markup and an SQL fragment included: kept exactly as sent.
    const state = JSON.stringify({ answer: 1, note: `Gloves first — ça va ✋ "<b>'); drop table users; --` });
    const saved = await saveState(first.stateAddress, JSON.stringify({ state }));
    expect(saved.status, await saved.clone().text()).toBe(204);
    // Nothing readable by the frame's opaque origin: Origin null is never echoed, nor `*` given.
    expect(saved.headers.get('access-control-allow-origin')).toBeNull();
    expect((await openPage(path)).previousState).toBe(state);
    expect(await savedStateOf(student)).toBe(state);

    // Replaced, not added to.
    const next = JSON.stringify({ answer: 2 });
    expect((await saveState(first.stateAddress, JSON.stringify({ state: next }))).status).toBe(204);
    expect(await savedStateOf(student)).toBe(next);
    const rows = await stored(student.id);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.state_ciphertext).not.toContain('answer');

    const audited = await app.db.sql<{ route: string; method: string; status: number }[]>`
      select route, method, status from audit_log
       where route like 'h5p-%/{activityId}/{grant}' and user_id = ${student.id} order by occurred_at, id`;
    expect(audited.map((row) => `${row.method} ${row.route} ${row.status}`)).toEqual([
      'GET h5p-player/{activityId}/{grant} 200',
      'POST h5p-state/{activityId}/{grant} 204',
      'GET h5p-player/{activityId}/{grant} 200',
      'GET h5p-player/{activityId}/{grant} 200',
      'POST h5p-state/{activityId}/{grant} 204',
      'GET h5p-player/{activityId}/{grant} 200',
    ]);

    // null clears it.
    expect((await saveState(first.stateAddress, '{"state":null}')).status).toBe(204);
    expect(await savedStateOf(student)).toBeNull();
    expect(await stored(student.id)).toHaveLength(0);
  });

  test("another reader's grant reads and writes only their own; a grant with its reader changed is refused", async () => {
    const mine = await stateAddressOf(student);
    const theirs = await stateAddressOf(classmate);
    expect((await saveState(mine, JSON.stringify({ state: '{"answer":0}' }))).status).toBe(204);
    expect(await savedStateOf(classmate)).toBeNull();
    expect((await saveState(theirs, JSON.stringify({ state: '{"answer":2}' }))).status).toBe(204);
    expect(await savedStateOf(student)).toBe('{"answer":0}');
    expect(await savedStateOf(classmate)).toBe('{"answer":2}');

    // The classmate's grant with the student's id put in: its HMAC covers the reader, so it is no grant.
    const [, , activityId, grant] = theirs.split('/') as string[];
    const [expires, , signature] = (grant as string).split('.') as [string, string, string];
    const spliced = `${activityId}/${expires}.${student.id}.${signature}`;
    expect((await openPage(`/h5p-player/${spliced}`)).status).toBe(404);
    expect((await saveState(`/h5p-state/${spliced}`, JSON.stringify({ state: '{"answer":1}' }))).status).toBe(404);
    expect(await savedStateOf(student)).toBe('{"answer":0}');
    await saveState(mine, '{"state":null}');
  });

  test('tampered, forged, expired, asset, foreign and retired grants are refused', async () => {
    const address = await stateAddressOf(student);
    const [, , activityId, grant] = address.split('/') as string[];
    const [expires, readerId, signature] = (grant as string).split('.') as [string, string, string];
    const flipped = `${signature.slice(0, -2)}${signature.at(-2) === 'A' ? 'B' : 'A'}${signature.at(-1)}`;
    const refusals: Record<string, string> = {
      tampered: `/h5p-state/${activityId}/${expires}.${readerId}.${flipped}`,
      'a later expiry': `/h5p-state/${activityId}/${Number(expires) + 3600}.${readerId}.${signature}`,
      forged: `/h5p-state/${activityId}/${expires}.${readerId}.${createHmac('sha256', Buffer.alloc(32, 7))
        .update(`h5p-player\n${activityId}\n${readerId}\n${expires}`)
        .digest('base64url')}`,
      // An asset grant of the activity (signed for its files, not for a reader).
      asset: `/h5p-state/${activityId}/${expires}.${createHmac('sha256', DEMO_KEY)
        .update(`h5p-assets\n${activityId}\n${expires}`)
        .digest('base64url')}`,
      'another activity': `/h5p-state/00000000-0000-4000-8000-000000000000/${grant}`,
      garbage: `/h5p-state/${activityId}/garbage`,
    };
    for (const [what, refused] of Object.entries(refusals)) {
      expect([what, (await openPage(refused.replace('/h5p-state/', '/h5p-player/'))).status]).toEqual([what, 404]);
      expect([what, (await saveState(refused, '{"state":"{}"}')).status]).toEqual([what, 404]);
    }
    expect((await saveState(`/h5p-state/not-a-uuid/${grant}`, '{"state":"{}"}')).status).toBe(400);
    expect((await saveState(`/h5p-state/${activityId}/${'1'.repeat(200)}`, '{"state":"{}"}')).status).toBe(400);

    const past = Math.floor(Date.now() / 1000) - 10;
    const old = createHmac('sha256', DEMO_KEY)
      .update(`h5p-player\n${activityId}\n${readerId}\n${past}`)
      .digest('base64url');
    const expired = await saveState(`/h5p-state/${activityId}/${past}.${readerId}.${old}`, '{"state":"{}"}');
    expect(expired.status).toBe(410);
    expect((await openPage(`/h5p-player/${activityId}/${past}.${readerId}.${old}`)).status).toBe(410);
    expect(((await expired.json()) as { detail: string }).detail).toMatch(/expired/);
    expect(await stored(student.id)).toHaveLength(0);

    // A retired activity's state address stops with it.
    await app.api(`/modules/${moduleId()}/h5p/retired-quiz`, {
      method: 'PUT',
      headers: { ...instructor.headers, 'Content-Type': 'application/zip' },
      body: minimalH5p('Retired quiz'),
    });
    const retiredAddress = await stateAddressOf(student, 'retired-quiz');
    expect((await saveState(retiredAddress, '{"state":"{}"}')).status).toBe(204);
    expect((await send('DELETE', `/modules/${moduleId()}/h5p/retired-quiz`, { as: instructor })).status).toBe(204);
    expect((await openPage(retiredAddress.replace('/h5p-state/', '/h5p-player/'))).status).toBe(404);
    expect((await saveState(retiredAddress, '{"state":"{}"}')).status).toBe(404);
  });

  test('a body that is not {"state": <JSON string or null>} is a 400 naming the field and saves nothing', async () => {
    const address = await stateAddressOf(classmate);
    expect((await saveState(address, '{"state":"{\\"answer\\":1}"}')).status).toBe(204);
    const bodies: Record<string, [string, string]> = {
      'not JSON': ['{"state": ', 'body'],
      'not UTF-8': ['\u00ff', 'body'],
      empty: ['', 'body'],
      'a number': ['{"state": 1}', 'body.state'],
      'an object': ['{"state": {"answer": 1}}', 'body.state'],
      'no state': ['{}', 'body.state'],
      'an extra field': ['{"state": "{}", "userId": "x"}', 'body.state'],
      'a state that is not JSON': ['{"state": "answer=1"}', 'body.state'],
      'a state of SQL': ['{"state": "1; drop table users"}', 'body.state'],
      'a lone surrogate': ['{"state": "\\"\\ud800\\""}', 'body.state'],
      'too long': [JSON.stringify({ state: JSON.stringify('x'.repeat(200_001)) }), 'body.state'],
    };
    for (const [what, [body, field]] of Object.entries(bodies)) {
      const sent =
        what === 'not UTF-8'
          ? await app.api(address, {
              method: 'POST',
              headers: { Origin: 'null', 'Content-Type': 'text/plain' },
              body: Buffer.from([0x7b, 0xff, 0x7d]),
            })
          : await saveState(address, body);
      expect([what, sent.status]).toEqual([what, 400]);
      const problem = (await sent.json()) as { errors?: { field: string }[] };
      expect([what, problem.errors?.[0]?.field]).toEqual([what, field]);
    }
    const tooLarge = await saveState(address, JSON.stringify({ state: JSON.stringify('x'.repeat(900_000)) }));
    expect(tooLarge.status).toBe(413);
    expect(await savedStateOf(classmate)).toBe('{"answer":1}');
  });
});
