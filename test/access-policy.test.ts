// docs/access-policy.md as a file: the README's access table is what `npm run docs:access` writes
// from it, and its parser refuses anything a reviewer could misread (so a typo cannot grant).
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, test } from 'vitest';
import {
  parsePolicy,
  README_PATH,
  readPolicy,
  renderAccessTable,
  TABLE_END,
  TABLE_START,
  whoOf,
  withAccessTable,
} from '../dev/access-policy';

const HEADER =
  '| route | anonymous | admin | staff | instructor | registrar | finance | student | admissions_counselor | admissions_manager | why |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |';
const table = (...rows: string[]) => `## area\n\n${HEADER}\n${rows.join('\n')}\n`;
const row = (route: string, cells: string, why = '') => `| \`${route}\` | ${cells} | ${why} |`;

describe('the README', () => {
  test('holds exactly the access table npm run docs:access writes from the policy', () => {
    const readme = readFileSync(README_PATH, 'utf8');
    expect(readme, 'run npm run docs:access').toBe(withAccessTable(readme, renderAccessTable(readPolicy())));
  });

  test('npm run docs:access -- --check says so too (exit 0 now)', async () => {
    const tsx = path.join(__dirname, '..', 'node_modules', '.bin', 'tsx');
    const script = path.join(__dirname, '..', 'dev', 'docs-access.ts');
    await expect(promisify(execFile)(tsx, [script, '--check'])).resolves.toBeDefined();
  });

  test('a README whose table was edited by hand is told apart from the generated one', () => {
    const readme = readFileSync(README_PATH, 'utf8');
    const edited = readme.replace('| admin, staff |', '| admin, staff, student |');
    expect(edited).not.toBe(readme);
    expect(withAccessTable(edited, renderAccessTable(readPolicy()))).toBe(readme);
  });

  test('without its markers the README is refused, not silently appended to', () => {
    expect(() => withAccessTable('# no table here', 'x')).toThrow(TABLE_START);
    expect(() => withAccessTable(`${TABLE_END}\n${TABLE_START}`, 'x')).toThrow(/markers/);
  });
});

describe('the policy parser', () => {
  const ok = row('GET things', '— | yes | yes | taught | yes | — | — | own | —', 'because');

  test('reads a row: route, anonymous, each role’s grant and the reason', () => {
    const [parsed] = parsePolicy(table(ok));
    expect(parsed).toMatchObject({
      area: 'area',
      method: 'GET',
      route: 'things',
      anonymous: false,
      why: 'because',
      grants: { admin: 'yes', instructor: 'taught', finance: 'no', admissions_counselor: 'own' },
    });
    expect(whoOf(parsed as never)).toBe(
      'admin, staff, registrar; instructor: programmes taught; admissions_counselor: own only',
    );
  });

  test.each([
    [
      'an unknown cell',
      row('GET a', '— | yes | maybe | — | — | — | — | — | —'),
      /unknown cell "maybe" in column staff/,
    ],
    ['a missing cell', row('GET a', '— | yes | — | — | — | — | — | —'), /expected 11 cells/],
    [
      '"taught" outside the instructor column',
      row('GET a', '— | taught | — | — | — | — | — | — | —'),
      /instructor's rule/,
    ],
    [
      'a public route closed to a role',
      row('GET a', 'yes | yes | — | yes | yes | yes | yes | yes | yes'),
      /open to staff/,
    ],
    ['anonymous "own"', row('GET a', 'own | yes | — | — | — | — | — | — | —'), /anonymous is yes or —/],
    ['a route without a method', '| `things` | — | yes | — | — | — | — | — | — | — | |', /METHOD route/],
  ])('refuses %s, naming the line', (_what, bad, message) => {
    expect(() => parsePolicy(table(ok, bad))).toThrow(message);
    expect(() => parsePolicy(table(ok, bad))).toThrow(/line 6/);
  });

  test('refuses a route listed twice and a table with a column missing', () => {
    expect(() => parsePolicy(table(ok, ok))).toThrow(/GET things is already on line 5/);
    expect(() => parsePolicy(`| route | anonymous | admin | why |\n| --- | --- | --- | --- |\n`)).toThrow(/columns/);
  });
});
