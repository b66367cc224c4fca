// One account path for the user and the student routes: one password rule when an account is
// created with a password, and problems that name the field where the caller sent it (a search
// body's `name` is `body.name`, not `query.name`).
import { beforeAll, describe, expect, test } from 'vitest';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createTestUser, type TestUser } from './helpers/users';

const app = useTestApp();
let admin: TestUser;

beforeAll(async () => {
  admin = await createTestUser(app.db.sql, { roles: ['admin'] });
});

const fieldsOf = async (response: Response) =>
  (((await response.json()) as { errors?: { field: string }[] }).errors ?? []).map((error) => error.field);

describe('one password rule', () => {
  test.each([
    ['a common password', 'password1234'],
    ['one holding the address', 'chloe.garcia-2026!'],
    ['too short', 'short'],
  ])(
    'an administrator creating a user with %s gets 400 on body.password, and nothing is stored',
    async (_, password) => {
      // The local part is `chloe.garcia`, which the second password contains.
      const unique = `chloe.garcia@${Math.random().toString(36).slice(2, 10)}.example.test`;
      const response = await send('POST', '/users', {
        as: admin,
        body: { email: unique, firstName: 'Chloé', lastName: 'García', password, roles: ['staff'] },
      });
      expect(response.status).toBe(400);
      expect(await fieldsOf(response)).toEqual(['body.password']);
      const search = await send('POST', '/users/search', { as: admin, body: { email: unique } });
      expect(((await search.json()) as { items: unknown[] }).items).toEqual([]);
    },
  );

  test('the students route applies the very same rule', async () => {
    const response = await send('POST', '/students', {
      as: admin,
      body: { email: 'refused.student@example.test', firstName: 'Ada', lastName: 'Byron', password: 'password1234' },
    });
    expect(response.status).toBe(400);
    expect(await fieldsOf(response)).toEqual(['body.password']);
  });

  test('a strong password is accepted on both routes', async () => {
    const user = await send('POST', '/users', {
      as: admin,
      body: {
        email: 'strong.user@example.test',
        firstName: 'Grace',
        lastName: 'Hopper',
        password: 'Tidal-Lantern-Quarry-41',
        roles: ['staff'],
      },
    });
    expect(user.status).toBe(201);
    const student = await send('POST', '/students', {
      as: admin,
      body: {
        email: 'strong.student@example.test',
        firstName: 'Alan',
        lastName: 'Turing',
        password: 'Mossy-Harbor-Violin-77',
      },
    });
    expect(student.status).toBe(201);
  });
});

describe('errors name the field the caller sent', () => {
  test('a name search too short to search by names body.name in a search body, query.name in a query', async () => {
    for (const path of ['/users/search', '/students/search']) {
      const response = await send('POST', path, { as: admin, body: { name: 'a' } });
      expect(response.status, path).toBe(400);
      expect(await fieldsOf(response), path).toEqual(['body.name']);
    }
    for (const path of ['/users?name=a', '/students?name=a']) {
      const response = await send('GET', path, { as: admin });
      expect(response.status, path).toBe(400);
      expect(await fieldsOf(response), path).toEqual(['query.name']);
    }
  });
});
