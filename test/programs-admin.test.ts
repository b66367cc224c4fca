// Programme and module administration over HTTP: who may change what, derived clock hours, module
// order, unique codes, retirement without deletion.
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { assignInstructor, createEnrollment } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();

let admin: TestUser;
let staff: TestUser;
let instructor: TestUser;
let otherInstructor: TestUser;
let student: TestUser;
let registrar: TestUser;

beforeAll(async () => {
  const sql = app.db.sql;
  ({ admin, staff, instructor, student, registrar } = await createRoleAccounts(sql));
  otherInstructor = await createTestUser(sql, { roles: ['instructor'] });
});

interface Module {
  id: string;
  code: string;
  title: string;
  description: string | null;
  clockHours: number;
  position: number;
}
interface Program {
  id: string;
  code: string;
  status: string;
  description: string | null;
  totalClockHours: number;
  modules: Module[];
}

let codeCounter = 0;
/** A programme created over HTTP by staff (the route under test), with its modules. */
async function postProgram(modules: { code: string; clockHours: number }[] = []): Promise<Program> {
  codeCounter += 1;
  const response = await send('POST', '/programs', {
    as: staff,
    body: {
      code: `P-${codeCounter}-${Date.now() % 100000}`,
      name: `Programme ${codeCounter}`,
      credentialLevel: 'certificate',
      modules: modules.map((module) => ({ ...module, title: `Module ${module.code}`, deliveryType: 'online' })),
    },
  });
  expect(response.status).toBe(201);
  return (await response.json()) as Program;
}

async function managed(id: string): Promise<Program> {
  const response = await send('GET', `/manage/programs/${id}`, { as: staff });
  expect(response.status).toBe(200);
  return (await response.json()) as Program;
}

const fieldsOf = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string; message: string }[] }).errors ?? [];

describe('creating programmes', () => {
  test('staff create a programme with its modules; the total clock hours are the sum of the modules', async () => {
    const program = await postProgram([
      { code: 'M1', clockHours: 20 },
      { code: 'M2', clockHours: 40 },
    ]);
    expect(program.totalClockHours).toBe(60);
    expect(program.status).toBe('active');
    expect(program.modules.map((module) => [module.code, module.position])).toEqual([
      ['M1', 1],
      ['M2', 2],
    ]);
    const [row] = await app.db.sql`select total_clock_hours from programs where id = ${program.id}`;
    expect(row?.total_clock_hours).toBe(60);
  });

  test('anonymous 401; student, instructor and registrar 403', async () => {
    const body = { code: 'NOPE', name: 'Nope', credentialLevel: 'certificate' };
    expect((await send('POST', '/programs', { body: body })).status).toBe(401);
    for (const user of [student, instructor, registrar]) {
      expect((await send('POST', '/programs', { as: user, body: body })).status, user.roles[0]).toBe(403);
    }
    const [row] = await app.db.sql`select count(*)::int as n from programs where code = 'NOPE'`;
    expect(row?.n).toBe(0);
  });

  test('a duplicate programme code is a 409; a client cannot set the total clock hours', async () => {
    const program = await postProgram();
    const again = await send('POST', '/programs', {
      as: admin,
      body: {
        code: program.code,
        name: 'Copy',
        credentialLevel: 'certificate',
      },
    });
    expect(again.status).toBe(409);
    const forged = await send('POST', '/programs', {
      as: admin,
      body: {
        code: 'FORGED',
        name: 'Forged',
        credentialLevel: 'certificate',
        totalClockHours: 9999,
      },
    });
    expect(forged.status).toBe(400);
    const errors = await fieldsOf(forged);
    expect(errors.some((error) => error.message.includes('totalClockHours'))).toBe(true);
  });

  test('duplicate module codes in one request, SQL in a code and wrong types are 400s naming the field', async () => {
    const duplicate = await send('POST', '/programs', {
      as: staff,
      body: {
        code: 'DUP-MODS',
        name: 'Dup',
        credentialLevel: 'certificate',
        modules: [
          { code: 'A', title: 'A', deliveryType: 'online', clockHours: 1 },
          { code: 'A', title: 'B', deliveryType: 'online', clockHours: 1 },
        ],
      },
    });
    expect(duplicate.status).toBe(400);
    expect((await fieldsOf(duplicate)).map((error) => error.field)).toContain('body.modules');

    const injected = await send('POST', '/programs', {
      as: staff,
      body: {
        code: "X'; drop table programs; --",
        name: 'Injected',
        credentialLevel: 'certificate',
      },
    });
    expect(injected.status).toBe(400);
    expect((await fieldsOf(injected)).map((error) => error.field)).toContain('body.code');

    const wrongType = await send('POST', '/programs', {
      as: staff,
      body: {
        code: 'WT',
        name: 'Wrong type',
        credentialLevel: 'certificate',
        modules: [{ code: 'A', title: 'A', deliveryType: 'teleport', clockHours: -3 }],
      },
    });
    expect(wrongType.status).toBe(400);
    const fields = (await fieldsOf(wrongType)).map((error) => error.field);
    expect(fields).toEqual(expect.arrayContaining(['body.modules.0.deliveryType', 'body.modules.0.clockHours']));
    const [row] = await app.db.sql`select count(*)::int as n from programs`;
    expect(row?.n).toBeGreaterThan(0);
  });
});

describe('modules', () => {
  test('adding a module appends it, or inserts it at a position, and recomputes the total', async () => {
    const program = await postProgram([
      { code: 'A', clockHours: 10 },
      { code: 'B', clockHours: 20 },
    ]);
    const appended = await send('POST', `/programs/${program.id}/modules`, {
      as: staff,
      body: {
        code: 'C',
        title: 'Third',
        deliveryType: 'in_person',
        clockHours: 30,
        requiresInPerson: true,
      },
    });
    expect(appended.status).toBe(201);
    const module = (await appended.json()) as Module & { programTotalClockHours: number };
    expect(module.position).toBe(3);
    expect(module.programTotalClockHours).toBe(60);

    const inserted = await send('POST', `/programs/${program.id}/modules`, {
      as: admin,
      body: {
        code: 'FIRST',
        title: 'Goes first',
        deliveryType: 'hybrid',
        clockHours: 5,
        position: 1,
      },
    });
    expect(inserted.status).toBe(201);
    const after = await managed(program.id);
    expect(after.modules.map((m) => [m.code, m.position])).toEqual([
      ['FIRST', 1],
      ['A', 2],
      ['B', 3],
      ['C', 4],
    ]);
    expect(after.totalClockHours).toBe(65);

    const pastTheEnd = await send('POST', `/programs/${program.id}/modules`, {
      as: admin,
      body: {
        code: 'FAR',
        title: 'Far',
        deliveryType: 'online',
        clockHours: 1,
        position: 9,
      },
    });
    expect(pastTheEnd.status).toBe(400);
    expect((await fieldsOf(pastTheEnd)).map((error) => error.field)).toContain('body.position');
  });

  test('a duplicate module code in a programme is a 409, on create and on rename', async () => {
    const program = await postProgram([
      { code: 'A', clockHours: 1 },
      { code: 'B', clockHours: 1 },
    ]);
    const create = await send('POST', `/programs/${program.id}/modules`, {
      as: staff,
      body: {
        code: 'A',
        title: 'Again',
        deliveryType: 'online',
        clockHours: 1,
      },
    });
    expect(create.status).toBe(409);
    const moduleB = program.modules[1] as Module;
    const rename = await send('PATCH', `/programs/${program.id}/modules/${moduleB.id}`, {
      as: staff,
      body: { code: 'A' },
    });
    expect(rename.status).toBe(409);
    // The same code in another programme is fine.
    const other = await postProgram([{ code: 'A', clockHours: 1 }]);
    expect(other.modules[0]?.code).toBe('A');
  });

  test('changing clock hours keeps the total consistent; concurrent additions get distinct positions', async () => {
    const program = await postProgram([{ code: 'A', clockHours: 10 }]);
    const moduleA = program.modules[0] as Module;
    const patched = await send('PATCH', `/programs/${program.id}/modules/${moduleA.id}`, {
      as: staff,
      body: { clockHours: 25 },
    });
    expect(patched.status).toBe(200);
    expect(((await patched.json()) as { programTotalClockHours: number }).programTotalClockHours).toBe(25);

    const responses = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        send('POST', `/programs/${program.id}/modules`, {
          as: staff,
          body: {
            code: `C${i}`,
            title: `Concurrent ${i}`,
            deliveryType: 'online',
            clockHours: i + 1,
          },
        }),
      ),
    );
    expect(responses.map((response) => response.status)).toEqual(Array(8).fill(201));
    const after = await managed(program.id);
    expect(after.modules.map((m) => m.position)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(after.totalClockHours).toBe(25 + 36);
  });

  test('instructors edit content of what they teach, nothing else', async () => {
    const program = await postProgram([{ code: 'A', clockHours: 10 }]);
    const moduleA = program.modules[0] as Module;
    await assignInstructor(app.db.sql, instructor.id, program.id);
    const script = '<script>alert(1)</script> & "quotes"';
    const content = await send('PATCH', `/programs/${program.id}/modules/${moduleA.id}`, {
      as: instructor,
      body: {
        title: 'Rewritten title',
        description: script,
      },
    });
    expect(content.status).toBe(200);
    const module = (await content.json()) as Module;
    expect(module.description).toBe(script); // stored and returned as data, in JSON
    expect(content.headers.get('content-type')).toMatch(/^application\/json/);

    const hours = await send('PATCH', `/programs/${program.id}/modules/${moduleA.id}`, {
      as: instructor,
      body: { clockHours: 1 },
    });
    expect(hours.status).toBe(403);
    const programDescription = await send('PATCH', `/programs/${program.id}`, {
      as: instructor,
      body: { description: 'New' },
    });
    expect(programDescription.status).toBe(200);
    const programName = await send('PATCH', `/programs/${program.id}`, { as: instructor, body: { name: 'Renamed' } });
    expect(programName.status).toBe(403);

    const notTheirs = await send('PATCH', `/programs/${program.id}/modules/${moduleA.id}`, {
      as: otherInstructor,
      body: {
        title: 'Hijack',
      },
    });
    expect(notTheirs.status).toBe(403);
    const after = await managed(program.id);
    expect(after.modules[0]?.title).toBe('Rewritten title');
    expect(after.modules[0]?.clockHours).toBe(10);
    expect(after.description).toBe('New');
  });

  test('a module of another programme is a 404', async () => {
    const one = await postProgram([{ code: 'A', clockHours: 1 }]);
    const two = await postProgram([{ code: 'B', clockHours: 1 }]);
    const response = await send('PATCH', `/programs/${one.id}/modules/${two.modules[0]?.id}`, {
      as: staff,
      body: { title: 'X' },
    });
    expect(response.status).toBe(404);
  });
});

describe('reordering', () => {
  test('a permutation reorders in one transaction; anything else is a 400', async () => {
    const program = await postProgram([
      { code: 'A', clockHours: 1 },
      { code: 'B', clockHours: 2 },
      { code: 'C', clockHours: 3 },
    ]);
    const ids = program.modules.map((module) => module.id);
    const reversed = [...ids].reverse();
    const response = await send('PUT', `/programs/${program.id}/modules/order`, {
      as: staff,
      body: { moduleIds: reversed },
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { modules: Module[] };
    expect(body.modules.map((module) => [module.code, module.position])).toEqual([
      ['C', 1],
      ['B', 2],
      ['A', 3],
    ]);

    const other = await postProgram([{ code: 'X', clockHours: 1 }]);
    for (const moduleIds of [
      ids.slice(0, 2),
      [...ids.slice(0, 2), other.modules[0]?.id],
      [ids[0], ids[0], ids[1]],
      [...ids, other.modules[0]?.id],
    ]) {
      const bad = await send('PUT', `/programs/${program.id}/modules/order`, { as: staff, body: { moduleIds } });
      expect(bad.status).toBe(400);
      expect((await fieldsOf(bad)).map((error) => error.field)[0]).toMatch(/^body\.moduleIds/);
    }
    expect((await managed(program.id)).modules.map((module) => module.code)).toEqual(['C', 'B', 'A']);
    expect(
      (await send('PUT', `/programs/${program.id}/modules/order`, { as: instructor, body: { moduleIds: ids } })).status,
    ).toBe(403);
  });
});

describe('retiring', () => {
  test('an admin retires a programme with enrollments; they continue, the catalogue hides it, staff still see it', async () => {
    const program = await postProgram([{ code: 'A', clockHours: 8 }]);
    const enrollmentId = await createEnrollment(app.db.sql, student.id, program.id);

    expect((await send('POST', `/programs/${program.id}/retire`, { as: staff })).status).toBe(403);
    const retired = await send('POST', `/programs/${program.id}/retire`, { as: admin });
    expect(retired.status).toBe(200);
    const body = (await retired.json()) as Program & { openEnrollments: number };
    expect(body.status).toBe('retired');
    expect(body.openEnrollments).toBe(1);
    const again = await send('POST', `/programs/${program.id}/retire`, { as: admin });
    expect(again.status).toBe(200);

    const [row] = await app.db.sql`select status from enrollments where id = ${enrollmentId}`;
    expect(row?.status).toBe('active');
    expect((await app.api(`/programs/${program.id}`)).status).toBe(404);

    const list = await send('GET', '/manage/programs?status=retired&limit=200', { as: registrar });
    expect(list.status).toBe(200);
    expect(list.headers.get('cache-control')).toMatch(/^private/);
    const page = (await list.json()) as { items: Program[] };
    expect(page.items.map((item) => item.id)).toContain(program.id);

    // Structure is frozen; there is no delete at all.
    const add = await send('POST', `/programs/${program.id}/modules`, {
      as: staff,
      body: {
        code: 'LATE',
        title: 'Late',
        deliveryType: 'online',
        clockHours: 1,
      },
    });
    expect(add.status).toBe(409);
    // A programme is retired, never deleted: DELETE is no method of the route.
    const deleted = await send('DELETE', `/programs/${program.id}`, { as: admin });
    expect(deleted.status).toBe(405);
    expect(deleted.headers.get('allow')).toBe('GET, HEAD, PATCH, OPTIONS');
    const [still] = await app.db.sql`select count(*)::int as n from programs where id = ${program.id}`;
    expect(still?.n).toBe(1);
  });

  test('the staff listing pages by code and needs a staff role', async () => {
    await postProgram();
    await postProgram();
    const seen: string[] = [];
    let next: string | null = null;
    do {
      const response = await send('GET', `/manage/programs?limit=2${next ? `&cursor=${next}` : ''}`, { as: staff });
      expect(response.status).toBe(200);
      const page = (await response.json()) as { items: Program[]; next: string | null };
      expect(page.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.items.map((item) => item.code));
      next = page.next;
    } while (next);
    const [row] = await app.db.sql`select count(*)::int as n from programs`;
    expect(seen).toHaveLength(row?.n as number);
    expect([...seen].sort()).toEqual(seen);
    expect((await send('GET', '/manage/programs', { as: student })).status).toBe(403);
    expect((await send('GET', '/manage/programs')).status).toBe(401);
  });
});
