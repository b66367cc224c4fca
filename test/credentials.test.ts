// Credentials over HTTP: the completion rule (a module without a progress row is incomplete), one per
// student and programme, unique serials, revocation without deletion, and who may do what.
import { beforeAll, describe, expect, test } from 'vitest';
import { decrypt } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createCredential, createEnrollment, createProgram, recordProgress } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let registrar: TestUser;
let admin: TestUser;
let staff: TestUser;
let instructor: TestUser;
let student: TestUser;
let otherStudent: TestUser;

const SERIAL = /^AADA-\d{4}-[0-9A-HJKMNP-TV-Z]{8}$/;

let programCounter = 0;
/** A programme with `count` modules of 10 hours (codes C1..Cn, in order). */
function programWith(count: number) {
  programCounter += 1;
  return createProgram(app.db.sql, {
    code: `CR-${programCounter}`,
    name: `Credential programme ${programCounter}`,
    hours: Array(count).fill(10),
    modulePrefix: 'C',
  });
}

const enroll = (user: TestUser, programId: string, status = 'active') =>
  createEnrollment(app.db.sql, user.id, programId, { status });

const record = (enrollmentId: string, moduleId: string, status: string) =>
  recordProgress(app.db.sql, enrollmentId, moduleId, { status });

/** A student who completed every module of a fresh programme. */
async function graduate(user: TestUser, modules = 2): Promise<string> {
  const { programId, moduleIds } = await programWith(modules);
  const enrollmentId = await enroll(user, programId);
  for (const moduleId of moduleIds) await record(enrollmentId, moduleId, 'passed');
  return programId;
}

/** A fresh one-module programme the user completed, and its credential issued over HTTP. */
async function graduateAndIssue(user: TestUser): Promise<void> {
  const programId = await graduate(user, 1);
  const response = await send('POST', '/credentials', { as: registrar, body: { studentId: user.id, programId } });
  expect(response.status).toBe(201);
}

interface Credential {
  id: string;
  studentId: string;
  programId: string;
  serial: string;
  credentialType: string;
  revokedAt: string | null;
  revokedBy: string | null;
  revokeReason: string | null;
}

beforeAll(async () => {
  const sql = app.db.sql;
  ({ registrar, admin, staff, instructor, student } = await createRoleAccounts(sql));
  otherStudent = await createTestUser(sql, { roles: ['student'] });
});

describe('issuing', () => {
  test('a module without a progress row is incomplete: 409 naming it; once complete, the credential is issued', async () => {
    const { programId, moduleIds } = await programWith(3);
    const enrollmentId = await enroll(student, programId);
    await record(enrollmentId, moduleIds[0] as string, 'completed');
    await record(enrollmentId, moduleIds[1] as string, 'passed');
    // C3 has no progress row at all (the old system counted only existing rows).
    const refused = await send('POST', '/credentials', { as: registrar, body: { studentId: student.id, programId } });
    expect(refused.status).toBe(409);
    const problem = (await refused.json()) as { detail: string };
    expect(problem.detail).toBe('Modules not complete: C3');
    const [none] = await app.db.sql`select count(*)::int as n from credentials where program_id = ${programId}`;
    expect(none?.n).toBe(0);

    await record(enrollmentId, moduleIds[2] as string, 'incomplete');
    const stillRefused = await send('POST', '/credentials', {
      as: registrar,
      body: { studentId: student.id, programId },
    });
    expect(((await stillRefused.json()) as { detail: string }).detail).toBe('Modules not complete: C3');

    await record(enrollmentId, moduleIds[2] as string, 'completed');
    const issued = await send('POST', '/credentials', { as: registrar, body: { studentId: student.id, programId } });
    expect(issued.status).toBe(201);
    expect(issued.headers.get('cache-control')).toBe('no-store');
    const credential = (await issued.json()) as Credential;
    expect(credential.serial).toMatch(SERIAL);
    expect(credential.serial.slice(5, 9)).toBe(String(new Date().getUTCFullYear()));
    expect(credential).toMatchObject({ studentId: student.id, programId, credentialType: 'certificate' });
  });

  test('failed modules and every incomplete module are listed in programme order', async () => {
    const { programId, moduleIds } = await programWith(4);
    const enrollmentId = await enroll(student, programId);
    await record(enrollmentId, moduleIds[1] as string, 'passed');
    await record(enrollmentId, moduleIds[3] as string, 'failed');
    const refused = await send('POST', '/credentials', { as: admin, body: { studentId: student.id, programId } });
    expect(((await refused.json()) as { detail: string }).detail).toBe('Modules not complete: C1, C3, C4');
  });

  test('one credential per student and programme: the second is a 409', async () => {
    const programId = await graduate(student);
    const first = await send('POST', '/credentials', { as: registrar, body: { studentId: student.id, programId } });
    expect(first.status).toBe(201);
    const second = await send('POST', '/credentials', {
      as: admin,
      body: {
        studentId: student.id,
        programId,
        credentialType: 'diploma',
      },
    });
    expect(second.status).toBe(409);
    const [row] = await app.db.sql`select count(*)::int as n from credentials where program_id = ${programId}`;
    expect(row?.n).toBe(1);
  });

  test('a revoked credential can be reissued; the revoked one stays; still only one live credential', async () => {
    const someone = await createTestUser(app.db.sql, { roles: ['student'] });
    const programId = await graduate(someone);
    const body = { studentId: someone.id, programId };
    const first = (await (await send('POST', '/credentials', { as: registrar, body })).json()) as Credential;
    expect(
      (await send('POST', `/credentials/${first.id}/revoke`, { as: admin, body: { reason: 'Name misspelt' } })).status,
    ).toBe(200);

    // Concurrent reissues: exactly one wins the partial unique index.
    const responses = await Promise.all(
      Array.from({ length: 4 }, () => send('POST', '/credentials', { as: registrar, body })),
    );
    expect(responses.map((response) => response.status).sort()).toEqual([201, 409, 409, 409]);
    const refused = responses.find((response) => response.status === 409) as Response;
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/already holds a credential/);
    const reissued = (await (responses.find((response) => response.status === 201) as Response).json()) as Credential;
    expect(reissued.id).not.toBe(first.id);
    expect(reissued.serial).not.toBe(first.serial);
    expect(reissued).toMatchObject({ revokedAt: null, revokedBy: null, revokeReason: null });

    // The reason is stored encrypted only (personal data, lib/personal-data.ts).
    const rows = await app.db.sql<
      { id: string; revoked_by: string | null; revoke_reason: null; reason: string | null }[]
    >`
      select id, revoked_by, revoke_reason, revoke_reason_ciphertext as reason
        from credentials where user_id = ${someone.id} order by issued_at`;
    expect(
      rows.map(({ reason, ...row }) => ({ ...row, reason: reason && decrypt(reason, 'credentials.revoke_reason') })),
    ).toEqual([
      { id: first.id, revoked_by: admin.id, revoke_reason: null, reason: 'Name misspelt' },
      { id: reissued.id, revoked_by: null, revoke_reason: null, reason: null },
    ]);
    const listed = (await (await send('GET', '/credentials', { as: someone })).json()) as { items: Credential[] };
    expect(listed.items.map((item) => [item.id, item.revokedBy, item.revokeReason])).toEqual([
      [reissued.id, null, null],
      [first.id, admin.id, 'Name misspelt'],
    ]);
  });

  test('concurrent requests for the same credential issue exactly one', async () => {
    const programId = await graduate(otherStudent);
    const responses = await Promise.all(
      Array.from({ length: 5 }, () =>
        send('POST', '/credentials', { as: registrar, body: { studentId: otherStudent.id, programId } }),
      ),
    );
    expect(responses.map((response) => response.status).sort()).toEqual([201, 409, 409, 409, 409]);
    // One credential exists, and it is the one the accepted request answered with.
    const issued = (await (responses.find((response) => response.status === 201) as Response).json()) as Credential;
    const rows = await app.db.sql`
      select id from credentials where user_id = ${otherStudent.id} and program_id = ${programId}`;
    expect(rows.map((row) => row.id)).toEqual([issued.id]);
  });

  test('serials are unique across many credentials', async () => {
    const serials = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const someone = await createTestUser(app.db.sql, { roles: ['student'] });
      const programId = await graduate(someone, 1);
      const response = await send('POST', '/credentials', {
        as: registrar,
        body: { studentId: someone.id, programId },
      });
      serials.add(((await response.json()) as Credential).serial);
    }
    expect(serials.size).toBe(6);
  });

  test('no modules, a withdrawn enrollment or no enrollment are refused', async () => {
    const empty = await programWith(0);
    await enroll(student, empty.programId);
    const noModules = await send('POST', '/credentials', {
      as: registrar,
      body: {
        studentId: student.id,
        programId: empty.programId,
      },
    });
    expect(noModules.status).toBe(409);

    const { programId, moduleIds } = await programWith(1);
    const enrollmentId = await enroll(student, programId, 'withdrawn');
    await record(enrollmentId, moduleIds[0] as string, 'passed');
    expect(
      (await send('POST', '/credentials', { as: registrar, body: { studentId: student.id, programId } })).status,
    ).toBe(409);
    expect(
      (await send('POST', '/credentials', { as: registrar, body: { studentId: otherStudent.id, programId } })).status,
    ).toBe(404);
  });

  test('only the registrar and admins issue; bad bodies are 400s', async () => {
    const programId = await graduate(otherStudent);
    const body = { studentId: otherStudent.id, programId };
    expect((await send('POST', '/credentials', { body })).status).toBe(401);
    for (const user of [staff, instructor, otherStudent]) {
      expect((await send('POST', '/credentials', { as: user, body })).status, user.roles[0]).toBe(403);
    }
    const bad = await send('POST', '/credentials', {
      as: registrar,
      body: { ...body, credentialType: '', serial: 'AADA-1-X' },
    });
    expect(bad.status).toBe(400);
  });
});

describe('listing and revoking', () => {
  let mine: Credential[];

  beforeAll(async () => {
    const someone = await createTestUser(app.db.sql, { roles: ['student'] });
    mine = [];
    for (let i = 0; i < 3; i++) {
      const programId = await graduate(someone, 1);
      const response = await send('POST', '/credentials', {
        as: registrar,
        body: { studentId: someone.id, programId },
      });
      mine.push((await response.json()) as Credential);
    }
    student = someone;
  });

  test('a student lists their own, page by page, newest first, without skips or repeats', async () => {
    const seen: string[] = [];
    let next: string | null = null;
    do {
      const response = await send('GET', `/credentials?limit=2${next ? `&cursor=${next}` : ''}`, { as: student });
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toBe('no-store');
      const page = (await response.json()) as { items: Credential[]; next: string | null };
      seen.push(...page.items.map((item) => item.id));
      next = page.next;
    } while (next);
    expect(seen).toEqual(mine.map((credential) => credential.id).reverse());
  });

  test("a student cannot list someone else's; the registrar lists anyone's", async () => {
    expect((await send('GET', `/credentials?studentId=${otherStudent.id}`, { as: student })).status).toBe(403);
    const response = await send('GET', `/credentials?studentId=${student.id}`, { as: registrar });
    const page = (await response.json()) as { items: Credential[] };
    expect(page.items).toHaveLength(3);
    expect((await send('GET', '/credentials', { as: instructor })).status).toBe(403);
    expect((await send('GET', '/credentials?limit=1000', { as: registrar })).status).toBe(400);
  });

  test('an admin revokes with a reason, once; nothing is deleted', async () => {
    const target = mine[0] as Credential;
    const path = `/credentials/${target.id}/revoke`;
    expect((await send('POST', path, { as: registrar, body: { reason: 'Issued in error' } })).status).toBe(403);
    const noReason = await send('POST', path, { as: admin, body: {} });
    expect(noReason.status).toBe(400);
    const revoked = await send('POST', path, { as: admin, body: { reason: 'Issued in error <script>' } });
    expect(revoked.status).toBe(200);
    const body = (await revoked.json()) as Credential;
    expect(body.revokedAt).not.toBeNull();
    expect(body.revokedBy).toBe(admin.id);
    expect(body.revokeReason).toBe('Issued in error <script>');
    expect((await send('POST', path, { as: admin, body: { reason: 'Again' } })).status).toBe(409);
    expect(
      (
        await send('POST', '/credentials/00000000-0000-4000-8000-000000000000/revoke', {
          as: admin,
          body: { reason: 'x y z' },
        })
      ).status,
    ).toBe(404);
    expect((await send('DELETE', `/credentials/${target.id}`, { as: admin })).status).toBe(404);
    const [row] = await app.db.sql`
      select revoke_reason_ciphertext as reason, revoked_by from credentials where id = ${target.id}`;
    expect({ ...row, reason: decrypt(row?.reason, 'credentials.revoke_reason') }).toEqual({
      reason: 'Issued in error <script>',
      revoked_by: admin.id,
    });
  });

  test('paging by (issued_at, id): ties on issued_at and credentials issued meanwhile skip or repeat nothing', async () => {
    const someone = await createTestUser(app.db.sql, { roles: ['student'] });
    const issuedAt = '2026-03-01T12:00:00.123456Z';
    const tied: string[] = [];
    for (let i = 0; i < 5; i++) {
      const { programId } = await programWith(1);
      tied.push(
        await createCredential(app.db.sql, {
          userId: someone.id,
          programId,
          serial: `AADA-2026-TIE${programCounter}`,
          issuedAt,
          issuedBy: registrar.id,
        }),
      );
    }
    // Newest first; equal times in descending id order.
    const expected = [...tied].sort().reverse();
    const seen: string[] = [];
    let next: string | null = null;
    let pages = 0;
    do {
      const response = await send(
        'GET',
        `/credentials?studentId=${someone.id}&limit=2${next ? `&cursor=${next}` : ''}`,
        { as: registrar },
      );
      expect(response.status).toBe(200);
      const page = (await response.json()) as { items: Credential[]; next: string | null };
      seen.push(...page.items.map((item) => item.id));
      next = page.next;
      pages += 1;
      // A credential issued while the list is being read is newer than every cursor: it never
      // shifts the pages still to come.
      if (pages === 1) await graduateAndIssue(someone);
    } while (next);
    expect(seen).toEqual(expected);
    expect(pages).toBe(3);
  });
});
