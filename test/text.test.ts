// The shared text rule (lib/text.ts) at the door of every free-text field, over real HTTP: the ugly
// inputs of the outside probe get a 400 problem naming the field, real names with accents of any
// script get in and are stored NFC, and numbers in a query string are read in decimal only.
import { beforeAll, describe, expect, test } from 'vitest';
import { decrypt, emailBlindIndex } from '../lib/crypto';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createProgram } from './helpers/records';
import { createRoleAccounts } from './helpers/roles';
import type { TestUser } from './helpers/users';

const app = useTestApp();

let admin: TestUser;
let staff: TestUser;
let registrar: TestUser;
let student: TestUser;

beforeAll(async () => {
  ({ admin, staff, registrar, student } = await createRoleAccounts(app.db.sql));
});

interface Problem {
  status: number;
  errors?: { field: string; message: string }[];
}

/** Expects a 400 problem+json whose errors name `field`. */
async function expectRefused(response: Response, field: string): Promise<void> {
  expect(response.status).toBe(400);
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const problem = (await response.json()) as Problem;
  expect(problem.errors?.map((error) => error.field)).toContain(field);
}

let emailCounter = 0;
const newStudent = (firstName: string, lastName = 'Example') => ({
  email: `text-rule-${++emailCounter}-${Date.now()}@example.test`,
  firstName,
  lastName,
});

const UGLY_NAMES: Record<string, string> = {
  'a byte-order mark in front': '\uFEFFAlice',
  'a byte-order mark inside': 'Ali\uFEFFce',
  'a zero-width space': 'Ali\u200Bce',
  'a zero-width joiner between Latin letters': 'Ali\u200Dce',
  'a word joiner': 'Ali\u2060ce',
  'a right-to-left override': '\u202EecilA',
  'stacked combining marks': `Ali${'\u0301'.repeat(8)}ce`,
  'a control character': 'Ali\u0005ce',
  'a C1 control character': 'Ali\u0085ce',
};

describe('names', () => {
  test.each(Object.entries(UGLY_NAMES))('a name with %s is refused, naming the field', async (_what, name) => {
    await expectRefused(await send('POST', '/students', { as: registrar, body: newStudent(name) }), 'body.firstName');
    await expectRefused(await send('PATCH', '/auth/me', { as: student, body: { lastName: name } }), 'body.lastName');
    await expectRefused(
      await send('POST', '/users', { as: admin, body: { ...newStudent('Ada', name), roles: ['staff'] } }),
      'body.lastName',
    );
  });

  test('nothing of a refused name was stored', async () => {
    const body = newStudent('\uFEFFMallory');
    expect((await send('POST', '/students', { as: registrar, body })).status).toBe(400);
    const [row] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from users where email_blind_index = ${emailBlindIndex(body.email)}`;
    expect(row?.n).toBe(0);
  });

  test.each([
    ["Zoë Ñúñez-O'Brien", 'Zoë', "Ñúñez-O'Brien"],
    ['Nguyễn Thị', 'Nguyễn', 'Thị'],
    ['Persian with a ZWNJ', 'مهر\u200Cانگیز', 'رضایی'],
    ['Hindi', 'क्षितिज', 'शर्मा'],
  ])('%s is accepted and stored NFC', async (_what, first, last) => {
    // Sent decomposed (as some keyboards and macOS file names produce it): stored composed.
    const response = await send('POST', '/students', {
      as: registrar,
      body: newStudent(first.normalize('NFD'), last.normalize('NFD')),
    });
    expect(response.status).toBe(201);
    const created = (await response.json()) as { id: string; firstName: string; lastName: string };
    expect(created.firstName).toBe(first.normalize('NFC'));
    expect(created.lastName).toBe(last.normalize('NFC'));
    const [row] = await app.db.sql<{ first_name_ciphertext: string; last_name_ciphertext: string }[]>`
      select first_name_ciphertext, last_name_ciphertext from users where id = ${created.id}`;
    expect(decrypt(row?.first_name_ciphertext as string, 'users.first_name')).toBe(first.normalize('NFC'));
    expect(decrypt(row?.last_name_ciphertext as string, 'users.last_name')).toBe(last.normalize('NFC'));
  });
});

describe('programme and module text', () => {
  let programCounter = 0;
  const newProgram = (overrides: Record<string, unknown>) => ({
    code: `TXT-${++programCounter}-${Date.now() % 100000}`,
    name: 'Dental Radiography',
    credentialLevel: 'certificate',
    ...overrides,
  });

  test('a control character in a public programme name is refused and never reaches the catalogue', async () => {
    const body = newProgram({ name: 'Dental\u0005Radiography' });
    await expectRefused(await send('POST', '/programs', { as: staff, body }), 'body.name');
    const catalogue = (await (await app.api('/programs?limit=200')).json()) as { items: { code: string }[] };
    expect(catalogue.items.map((item) => item.code)).not.toContain(body.code);
  });

  test.each([
    ['credentialLevel', { credentialLevel: 'certif\u200Bicate' }],
    ['description', { description: 'Line one\u0007' }],
    ['modules.0.title', { modules: [{ code: 'M1', title: 'X\u202E', deliveryType: 'online', clockHours: 1 }] }],
    ['code', { code: '\uFEFFABC' }],
  ])('%s with an invisible or control character is refused', async (field, overrides) => {
    await expectRefused(await send('POST', '/programs', { as: staff, body: newProgram(overrides) }), `body.${field}`);
  });

  test('a multi-line description keeps its line breaks and tabs (CR LF becomes LF), trimmed', async () => {
    const response = await send('POST', '/programs', {
      as: staff,
      body: newProgram({ description: '  Week 1:\r\n\tinfection control\nWeek 2: radiography 👩‍⚕️  ' }),
    });
    expect(response.status).toBe(201);
    const program = (await response.json()) as { description: string };
    // The ZWJ inside an emoji sequence is part of what is written, unlike one between Latin letters.
    expect(program.description).toBe('Week 1:\n\tinfection control\nWeek 2: radiography 👩‍⚕️');
  });

  test('a one-line field refuses a line break inside it', async () => {
    await expectRefused(
      await send('POST', '/programs', { as: staff, body: newProgram({ name: 'Dental\nRadiography' }) }),
      'body.name',
    );
  });
});

describe('other free-text fields', () => {
  test('a credential revocation reason and an enrollment transition reason follow the rule', async () => {
    const { programId } = await createProgram(app.db.sql, { code: 'TXT-RSN', hours: [1], modulePrefix: 'TR' });
    const enrollment = await send('POST', '/enrollments', {
      as: registrar,
      body: {
        studentId: student.id,
        programId,
        startDate: '2026-01-05',
      },
    });
    expect(enrollment.status).toBe(201);
    const { id } = (await enrollment.json()) as { id: string };
    await expectRefused(
      await send('POST', `/enrollments/${id}/transitions`, {
        as: registrar,
        body: { to: 'on_hold', reason: 'Family\u0000leave' },
      }),
      'body.reason',
    );
    await expectRefused(
      await send('POST', '/credentials/00000000-0000-4000-8000-000000000000/revoke', {
        as: admin,
        body: {
          reason: 'Issued in error\u202E',
        },
      }),
      'body.reason',
    );
  });

  test('search words follow the rule', async () => {
    await expectRefused(await send('POST', '/users/search', { as: admin, body: { name: 'chl\u200Bo' } }), 'body.name');
    await expectRefused(
      await send('POST', '/students/search', { as: registrar, body: { name: 'chl\u0005o' } }),
      'body.name',
    );
  });
});

describe('numbers in a query string', () => {
  test.each(['0x10', '1e1', '+7', ' 7', '7.0', ''])('days=%j is refused: decimal digits only', async (days) => {
    await expectRefused(
      await send('GET', `/audit/summary?days=${encodeURIComponent(days)}`, { as: admin }),
      'query.days',
    );
  });

  test('days=16 is read as sixteen days', async () => {
    const response = await send('GET', '/audit/summary?days=16', { as: admin });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { days: number }).days).toBe(16);
  });
});
