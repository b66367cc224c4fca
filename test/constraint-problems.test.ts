// The one constraint map (declareConstraints in lib/errors.ts) through real HTTP: an area that declares
// its constraints gets a violated one answered as that problem, naming the field, without catching a
// database error in its handler; a constraint nobody declared keeps the generic answer; neither says
// anything of PostgreSQL's own text (constraint, table or value).
import { describe, expect, test } from 'vitest';
import { declaredConstraintNames } from '../lib/errors';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';

const app = useTestApp({ fixtures: ['constraint-routes.ts'] });

interface Problem {
  status: number;
  type: string;
  detail: string;
  errors?: { field: string; message: string }[];
}

async function violate(body: Record<string, unknown>): Promise<{ status: number; problem: Problem; text: string }> {
  const response = await send('POST', '/fixture/constraints', { body });
  expect(response.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const text = await response.text();
  return { status: response.status, problem: JSON.parse(text) as Problem, text };
}

describe('a declared constraint is answered as its problem', () => {
  test('a unique violation is a 409 naming the field', async () => {
    const { status, problem } = await violate({ violate: 'unique', code: 'taken' });
    expect(status).toBe(409);
    expect(problem).toMatchObject({
      type: 'urn:aada:problem:conflict',
      detail: 'A note with this code already exists',
      errors: [{ field: 'body.code', message: 'A note with this code already exists' }],
    });
  });

  test('a foreign-key violation is the declared 400 naming the field', async () => {
    const { status, problem } = await violate({ violate: 'foreign-key', noteCode: 'missing' });
    expect(status).toBe(400);
    expect(problem).toMatchObject({
      type: 'urn:aada:problem:validation-error',
      errors: [{ field: 'body.noteCode', message: 'No such note' }],
    });
  });

  test('a check across two fields names the one the caller sent', async () => {
    const endSent = await violate({ violate: 'check', end: 0 });
    expect(endSent.status).toBe(400);
    expect(endSent.problem.errors).toEqual([{ field: 'body.end', message: 'end must not precede start' }]);
    const startSent = await violate({ violate: 'check', start: 5 });
    expect(startSent.problem.errors).toEqual([{ field: 'body.start', message: 'end must not precede start' }]);
  });
});

describe('what PostgreSQL says never reaches the client', () => {
  test('an undeclared unique violation keeps the generic 409, with no field', async () => {
    const { status, problem } = await violate({ violate: 'undeclared' });
    expect(status).toBe(409);
    expect(problem.detail).toBe('A record with these values already exists');
    expect(problem.errors).toBeUndefined();
  });

  test.each([
    ['unique', { code: 'taken' }],
    ['foreign-key', { noteCode: 'missing' }],
    ['check', { end: 0 }],
    ['undeclared', {}],
  ])('a %s violation names no constraint, table or value', async (kind, extra) => {
    const { text } = await violate({ violate: kind, ...extra });
    expect(text).not.toMatch(/fixture_|violates|constraint|missing|\(code\)|Key \(/i);
  });
});

test('every constraint an area declares exists in the schema (a misspelt name would map nothing)', async () => {
  const declared = declaredConstraintNames().filter((name) => !name.startsWith('fixture_'));
  // The app's own areas declare theirs at load: the map is not empty.
  expect(declared).toEqual(expect.arrayContaining(['programs_code_key', 'users_email_blind_index_key']));
  const rows = await app.db.sql<{ name: string }[]>`
    select conname as name from pg_constraint where conname = any(${declared})
    union select indexname from pg_indexes where indexname = any(${declared})`;
  expect(rows.map((row) => row.name).sort()).toEqual([...declared].sort());
});
