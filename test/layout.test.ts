// The rule of the layout (docs/architecture.md), checked on the source: a function file holds route
// declarations and request schemas, never SQL (that lives in lib/<area>.ts as a query named by
// intent), and every handler is a named function, so a stack trace names the route's code. The
// patterns are tried on planted lines first, so the scan can fail.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../dev/database';

const FUNCTIONS = path.join(REPO_ROOT, 'functions');

/**
 * A postgres.js tagged template or raw query: `sql\``, `tx\``, `q\``, `sql<Row[]>\``, `db()\``,
 * `sql.unsafe(`. The names are the ones the code base gives its connections.
 */
const SQL_TEXT = /(?:\b(?:sql|tx|q|trx|db\(\)|timerDb\(\))\s*(?:<[^`;]*?>)?\s*`)|\.unsafe\s*\(/;

/** A handler that is not a named function: `handler: async (…) =>`, `handler: (…) =>`, `handler: async x =>`. */
const ANONYMOUS_HANDLER = /\bhandler\s*:\s*(?:async\s*)?(?:\(|[A-Za-z_$][\w$]*\s*=>)/;

const functionFiles = readdirSync(FUNCTIONS)
  .filter((name) => name.endsWith('.ts'))
  .sort();

/** Lines of a file matching a pattern, as `file:line: text`, comments left out. */
function offending(file: string, pattern: RegExp): string[] {
  const lines = readFileSync(path.join(FUNCTIONS, file), 'utf8').split('\n');
  return lines.flatMap((line, index) => {
    const code = line.trimStart();
    if (code.startsWith('//') || code.startsWith('*') || code.startsWith('/*')) return [];
    return pattern.test(line) ? [`${file}:${index + 1}: ${code}`] : [];
  });
}

describe('the patterns catch what they are for', () => {
  test.each([
    'const [row] = await sql`select 1`;',
    'const rows = await sql<{ removed: number }[]>`delete from x`;',
    'await tx`update users set status = $1`;',
    "eligible: (q) => q`u.status = 'active'`,",
    'await db()`select 1`;',
    'await sql.unsafe(text);',
  ])('SQL: %s', (line) => {
    expect(SQL_TEXT.test(line)).toBe(true);
  });

  test.each([
    'const sqlText = `a template`;',
    'await findStudent(sql, id);',
    'message: `At most 128 bytes`,',
    '  .refine((q) => q.from <= q.to)',
  ])('not SQL: %s', (line) => {
    expect(SQL_TEXT.test(line)).toBe(false);
  });

  test.each([
    'handler: async ({ sql }) => {',
    'handler: async () => json({ status: "ok" }),',
    'handler: (input) => json(input),',
    'handler: async input => json(input),',
  ])('anonymous: %s', (line) => {
    expect(ANONYMOUS_HANDLER.test(line)).toBe(true);
  });

  test.each(['handler: async function readTranscript({ sql, params }) {', 'handler: sendOutbox,'])(
    'named: %s',
    (line) => {
      expect(ANONYMOUS_HANDLER.test(line)).toBe(false);
    },
  );
});

describe('functions/*.ts', () => {
  test('there are function files to scan', () => {
    expect(functionFiles.length).toBeGreaterThan(20);
  });

  test('no function file holds SQL: it belongs in lib/<area>.ts as a query named by intent', () => {
    expect(functionFiles.flatMap((file) => offending(file, SQL_TEXT))).toEqual([]);
  });

  test('every handler is a named function', () => {
    expect(functionFiles.flatMap((file) => offending(file, ANONYMOUS_HANDLER))).toEqual([]);
  });
});
