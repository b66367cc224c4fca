// The rule of the layout (docs/architecture.md), checked on the source: a function file holds route
// declarations and request schemas, never SQL (that lives in lib/<area>.ts as a query named by
// intent), and every handler is a named function, so a stack trace names the route's code; a file
// of lib/, functions/ or dev/ over 350 lines says in its header why it is one file. The patterns are
// tried on planted lines first, so the scan can fail.
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

/** The header of a long file says why it is one file (a sentence a reviewer can check, not a waiver). */
const LENGTH_REASON = /^\/\/ Why one file over 350 lines: \S/m;
const LONG_FILE_LINES = 350;

const functionFiles = readdirSync(FUNCTIONS)
  .filter((name) => name.endsWith('.ts'))
  .sort();

/** The comment lines a file opens with. */
const headerOf = (text: string) => {
  const lines = text.split('\n');
  const end = lines.findIndex((line) => !line.startsWith('//'));
  return lines.slice(0, end === -1 ? lines.length : end).join('\n');
};

/** `dir/file.ts` of every TypeScript file of lib/, functions/ and dev/ longer than LONG_FILE_LINES. */
function longFiles(): { file: string; text: string }[] {
  return ['lib', 'functions', 'dev'].flatMap((dir) =>
    readdirSync(path.join(REPO_ROOT, dir))
      .filter((name) => name.endsWith('.ts'))
      .map((name) => ({ file: `${dir}/${name}`, text: readFileSync(path.join(REPO_ROOT, dir, name), 'utf8') }))
      .filter(({ text }) => text.split('\n').length - 1 > LONG_FILE_LINES),
  );
}

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

  test('a header gives the reason a long file is one file, and only the header counts', () => {
    const reason = '// Why one file over 350 lines: the parser and the matcher change together.';
    expect(LENGTH_REASON.test(headerOf(`// What it does.\n//\n${reason}\nimport x from 'y';\n`))).toBe(true);
    expect(LENGTH_REASON.test(headerOf(`// What it does.\nimport x from 'y';\n${reason}\n`))).toBe(false);
    expect(
      LENGTH_REASON.test(headerOf("// What it does.\n// Why one file over 350 lines:\nimport x from 'y';\n")),
    ).toBe(false);
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

describe('long files', () => {
  test('there are long files to check (the scan reads the right folders)', () => {
    expect(longFiles().length).toBeGreaterThan(5);
  });

  test('every file over 350 lines says in its header why it is one file', () => {
    const unexplained = longFiles()
      .filter(({ text }) => !LENGTH_REASON.test(headerOf(text)))
      .map(({ file }) => file);
    expect(unexplained).toEqual([]);
  });
});
