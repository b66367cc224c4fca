// GET statements with filters over HTTP: agent, verb, activity, registration, related_*, since/until,
// ascending, limit and `more` links (keyset, sealed, tamper-proof), voiding (the voided statement leaves
// queries, the voiding one matches what its target matched), StatementRef targeting, formats, multipart
// attachments with SHA-2 checks and signed statements (JWS: algorithm, payload, certificate).
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { beforeAll, describe, expect, test } from 'vitest';
import { createCredential } from '../lib/xapi-credentials';
import { useTestApp } from './helpers/app';
import { createTestUser } from './helpers/users';

const app = useTestApp();
let auth = '';

function xapi(method: string, path: string, body?: unknown | Buffer, headers: Record<string, string> = {}) {
  return app.api(`/xapi${path}`, {
    method,
    headers: {
      'X-Experience-API-Version': '1.0.3',
      Authorization: auth,
      ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      ...headers,
    },
    ...(body === undefined
      ? {}
      : { body: typeof body === 'string' || Buffer.isBuffer(body) ? body : JSON.stringify(body) }),
  });
}

const run = randomUUID().slice(0, 8);
const agentA = { mbox: `mailto:a-${run}@example.org`, name: 'A' };
const agentB = { mbox: `mailto:b-${run}@example.org`, name: 'B' };
const course = `http://example.org/${run}/course`;
const quiz = `http://example.org/${run}/quiz`;
const registration = randomUUID();
const VERB = (name: string) => ({ id: `http://adlnet.gov/expapi/verbs/${name}` });

const st = (actor: object, verb: string, object: string, extra: Record<string, unknown> = {}) => ({
  id: randomUUID(),
  actor,
  verb: VERB(verb),
  object: { id: object },
  ...extra,
});

type Result = { statements: { id: string }[]; more: string };
async function query(params: Record<string, string>): Promise<Result> {
  const response = await xapi('GET', `/statements?${new URLSearchParams(params)}`);
  expect(response.status, await response.clone().text()).toBe(200);
  return (await response.json()) as Result;
}
const ids = (result: Result) => result.statements.map((s) => s.id);

const stored: Record<string, { id: string }> = {};

beforeAll(async () => {
  const admin = await createTestUser(app.db.sql, { roles: ['admin'] });
  const credential = await createCredential(app.db.sql, { label: 'queries', scopes: ['all'] }, admin.id);
  auth = `Basic ${Buffer.from(`${credential.key}:${credential.secret}`).toString('base64')}`;
  stored.aCourse = st(agentA, 'attempted', course, { context: { registration } });
  stored.aQuiz = st(agentA, 'passed', quiz, { context: { contextActivities: { parent: { id: course } } } });
  stored.bCourse = st(agentB, 'completed', course, { context: { instructor: agentA } });
  stored.bQuiz = st(agentB, 'failed', quiz);
  for (const statement of Object.values(stored)) {
    expect((await xapi('POST', '/statements', statement)).status).toBe(200);
  }
});

describe('filters', () => {
  test('agent, verb, activity, registration each select their statements, newest first', async () => {
    expect(ids(await query({ agent: JSON.stringify(agentA) }))).toEqual([stored.aQuiz?.id, stored.aCourse?.id]);
    expect(ids(await query({ verb: VERB('failed').id, activity: quiz }))).toEqual([stored.bQuiz?.id]);
    expect(ids(await query({ activity: course }))).toEqual([stored.bCourse?.id, stored.aCourse?.id]);
    expect(ids(await query({ registration }))).toEqual([stored.aCourse?.id]);
    expect(ids(await query({ agent: JSON.stringify(agentB), activity: course }))).toEqual([stored.bCourse?.id]);
  });

  test('related_activities and related_agents widen the match; ascending reverses it', async () => {
    const related = await query({ activity: course, related_activities: 'true', ascending: 'true' });
    expect(ids(related)).toEqual([stored.aCourse?.id, stored.aQuiz?.id, stored.bCourse?.id]);
    const instructing = await query({ agent: JSON.stringify(agentA), related_agents: 'true' });
    expect(ids(instructing)).toContain(stored.bCourse?.id);
  });

  test('since and until bound the stored time', async () => {
    const all = (await query({ activity: course, related_activities: 'true', ascending: 'true' })).statements as {
      id: string;
      stored: string;
    }[];
    const middle = all[1] as unknown as { stored: string };
    expect(ids(await query({ activity: course, related_activities: 'true', since: middle.stored })).length).toBe(
      all.filter((s) => s.stored > middle.stored).length,
    );
    const until = await query({ activity: course, related_activities: 'true', until: middle.stored });
    expect(until.statements.every((s) => (s as unknown as { stored: string }).stored <= middle.stored)).toBe(true);
  });

  test('more links page by keyset without repeats, and a tampered one is a 400', async () => {
    const seen: string[] = [];
    let page = await query({ activity: course, related_activities: 'true', limit: '1' });
    seen.push(...ids(page));
    while (page.more) {
      expect(page.more).not.toContain(agentA.mbox);
      const response = await app.api(page.more.replace(/^\/api/, ''), {
        headers: { 'X-Experience-API-Version': '1.0.3', Authorization: auth },
      });
      page = (await response.json()) as Result;
      seen.push(...ids(page));
    }
    expect(seen).toEqual([stored.bCourse?.id, stored.aQuiz?.id, stored.aCourse?.id]);
    expect((await xapi('GET', '/statements?more=v1.demo1.AAAA')).status).toBe(400);
  });

  test('bad filter values are 400s naming the parameter', async () => {
    for (const q of [
      'agent=notjson',
      'agent=%7B%7D',
      'verb=nope',
      'registration=1',
      'since=yesterday',
      'limit=-1',
      'format=all',
      'colour=red',
    ]) {
      const response = await xapi('GET', `/statements?${q}`);
      expect(response.status, q).toBe(400);
    }
  });

  test('format=ids keeps only identifiers', async () => {
    const page = (await query({ agent: JSON.stringify(agentB), format: 'ids', limit: '1' })) as unknown as {
      statements: { actor: Record<string, unknown>; object: Record<string, unknown> }[];
    };
    expect(page.statements[0]?.actor).toEqual({ mbox: agentB.mbox });
    expect(Object.keys(page.statements[0]?.object ?? {})).toEqual(['id']);
  });
});

describe('voiding and StatementRefs', () => {
  test('a voided statement leaves queries and is read by voidedStatementId; its voiding statement matches its filters', async () => {
    const target = st(agentB, 'experienced', `http://example.org/${run}/voided`);
    await xapi('POST', '/statements', target);
    const voiding = st(agentA, 'voided', '', { object: { objectType: 'StatementRef', id: target.id } });
    voiding.verb = { id: 'http://adlnet.gov/expapi/verbs/voided' };
    expect((await xapi('POST', '/statements', voiding)).status).toBe(200);
    expect((await xapi('GET', `/statements?statementId=${target.id}`)).status).toBe(404);
    expect((await xapi('GET', `/statements?voidedStatementId=${target.id}`)).status).toBe(200);
    const byActivity = await query({ activity: `http://example.org/${run}/voided` });
    expect(ids(byActivity)).toEqual([voiding.id]);
    const voidVoiding = st(agentA, 'voided', '', { object: { objectType: 'StatementRef', id: voiding.id } });
    voidVoiding.verb = { id: 'http://adlnet.gov/expapi/verbs/voided' };
    expect((await xapi('POST', '/statements', voidVoiding)).status).toBe(400);
  });

  test('a statement targeting one stored later still matches the target’s filters', async () => {
    const later = st(agentB, 'answered', `http://example.org/${run}/later`);
    const ref = st(agentA, 'liked', '', { object: { objectType: 'StatementRef', id: later.id } });
    await xapi('POST', '/statements', ref);
    await xapi('POST', '/statements', later);
    expect(ids(await query({ activity: `http://example.org/${run}/later` }))).toEqual([later.id, ref.id]);
  });
});

function multipart(statement: object, parts: { type: string; content: Buffer; hash?: string; encoding?: string }[]) {
  const boundary = `b-${run}`;
  const chunks: Uint8Array[] = [
    Buffer.from(`--${boundary}\r\nContent-Type: application/json\r\n\r\n${JSON.stringify(statement)}\r\n`),
  ];
  for (const part of parts) {
    const hash = part.hash ?? createHash('sha256').update(part.content).digest('hex');
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Type: ${part.type}\r\nContent-Transfer-Encoding: ${part.encoding ?? 'binary'}\r\nX-Experience-API-Hash: ${hash}\r\n\r\n`,
      ),
      part.content,
      Buffer.from('\r\n'),
    );
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { body: Buffer.concat(chunks), type: `multipart/mixed; boundary=${boundary}` };
}

describe('attachments', () => {
  const content = Buffer.from(`certificate of completion ${run}`);
  const attachment = {
    usageType: 'http://example.org/certificate',
    display: { 'en-US': 'Certificate' },
    contentType: 'text/plain',
    length: content.length,
    sha2: createHash('sha256').update(content).digest('hex'),
  };

  test('a statement and its attachment are stored and come back as multipart/mixed', async () => {
    const statement = st(agentA, 'completed', course, { attachments: [attachment] });
    const { body, type } = multipart(statement, [{ type: 'text/plain', content }]);
    const posted = await xapi('POST', '/statements', body, { 'Content-Type': type });
    expect(posted.status, await posted.clone().text()).toBe(200);
    const plain = await xapi('GET', `/statements?statementId=${statement.id}`);
    expect(plain.headers.get('content-type')).toMatch(/^application\/json/);
    const got = await xapi('GET', `/statements?statementId=${statement.id}&attachments=true`);
    expect(got.headers.get('content-type')).toMatch(/^multipart\/mixed; boundary=/);
    const text = await got.text();
    expect(text).toContain(`certificate of completion ${run}`);
    expect(text).toContain(`X-Experience-API-Hash: ${attachment.sha2}`);
  });

  test('a missing part, a wrong hash, a stray part or a non-binary part is a 400', async () => {
    const statement = () => st(agentA, 'completed', course, { attachments: [attachment] });
    const cases = [
      multipart(statement(), []),
      multipart(statement(), [{ type: 'text/plain', content, hash: 'a'.repeat(64) }]),
      multipart(statement(), [
        { type: 'text/plain', content },
        { type: 'text/plain', content: Buffer.from('stray') },
      ]),
      multipart(statement(), [{ type: 'text/plain', content, encoding: 'base64' }]),
    ];
    for (const { body, type } of cases)
      expect((await xapi('POST', '/statements', body, { 'Content-Type': type })).status).toBe(400);
    expect((await xapi('POST', '/statements', statement())).status).toBe(400);
  });

  test('signed statements: RS256 with a matching payload is stored; another payload, HS256 or a forged signature are 400', async () => {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const jws = (header: object, payload: object, key = privateKey) => {
      const input = `${Buffer.from(JSON.stringify(header)).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
      return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
    };
    const signedPost = (statement: Record<string, unknown>, signature: string) => {
      const bytes = Buffer.from(signature);
      const withSignature = {
        ...statement,
        attachments: [
          {
            usageType: 'http://adlnet.gov/expapi/attachments/signature',
            display: { 'en-US': 'Signature' },
            contentType: 'application/octet-stream',
            length: bytes.length,
            sha2: createHash('sha256').update(bytes).digest('hex'),
          },
        ],
      };
      const { body, type } = multipart(withSignature, [{ type: 'application/octet-stream', content: bytes }]);
      return xapi('POST', '/statements', body, { 'Content-Type': type });
    };
    const good = st(agentA, 'completed', course);
    expect((await signedPost(good, jws({ alg: 'RS256' }, good))).status).toBe(200);
    const other = st(agentA, 'completed', course);
    expect((await signedPost(other, jws({ alg: 'RS256' }, { ...other, verb: VERB('failed') }))).status).toBe(400);
    expect((await signedPost(st(agentA, 'completed', course), 'not.a.jws!')).status).toBe(400);
    const hs = st(agentA, 'completed', course);
    expect((await signedPost(hs, jws({ alg: 'HS256' }, hs))).status).toBe(400);
  });
});
