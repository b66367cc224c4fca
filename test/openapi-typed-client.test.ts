// The contract as a portal developer uses it: TypeScript types generated from the served document with
// openapi-typescript, a small client (test/fixtures/typed-client/client.ts, on openapi-fetch) type-checked
// against them with the project's TypeScript, then run against the app over HTTP. A route whose answer
// schema goes missing or wrong fails the type check (the client reads typed fields, and lines the types
// must refuse are marked @ts-expect-error), and a schema that lies about the answer fails the assertions.
import { copyFileSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import openapiTS, { astToString } from 'openapi-typescript';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { REPO_ROOT } from '../dev/database';
import { useTestApp } from './helpers/app';
import { createRoleAccounts } from './helpers/roles';
import type { TestUser } from './helpers/users';

const app = useTestApp();

/**
 * The client's functions as this file calls them. Imported by a path the type check does not follow: the
 * client is type-checked in the test, against the generated types, not by the repository's check.
 */
interface TypedClient {
  createProgramme(origin: string, token: string, code: string): Promise<Record<string, unknown> & { id: string }>;
  moduleTitles(origin: string, id: string): Promise<unknown>;
  catalogue(origin: string, limit: number): Promise<{ code: string; hours: number }[]>;
  openEnrollments(origin: string, token: string): Promise<number[]>;
  readiness(origin: string): Promise<string>;
}
const CLIENT = path.join(REPO_ROOT, 'test', 'fixtures', 'typed-client', 'client.ts');
let client: TypedClient;
let dir: string;
let admin: TestUser;
let origin: string;

beforeAll(async () => {
  ({ admin } = await createRoleAccounts(app.db.sql));
  origin = new URL(app.url).origin;
  client = (await import(/* @vite-ignore */ CLIENT)) as TypedClient;
  const document = (await (await app.api('/openapi.json')).json()) as Parameters<typeof openapiTS>[0];
  dir = mkdtempSync(path.join(tmpdir(), 'typed-client-'));
  writeFileSync(path.join(dir, 'openapi.d.ts'), astToString(await openapiTS(document)));
  copyFileSync(CLIENT, path.join(dir, 'client.ts'));
  // openapi-fetch resolves from the project's own packages.
  symlinkSync(path.join(REPO_ROOT, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('types generated from the document', () => {
  test('type-check the client: typed fields read, wrong uses refused', () => {
    const program = ts.createProgram([path.join(dir, 'client.ts')], {
      strict: true,
      noEmit: true,
      noUncheckedIndexedAccess: true,
      exactOptionalPropertyTypes: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.Preserve,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      skipLibCheck: true,
      types: [],
    });
    const problems = ts
      .getPreEmitDiagnostics(program)
      .map((diagnostic) => ts.flattenDiagnosticMessageText(diagnostic.messageText, '\n'));
    expect(problems).toEqual([]);
  });

  test('the generated types give each answer its fields (no `unknown` bodies)', async () => {
    const { readFileSync } = await import('node:fs');
    const types = readFileSync(path.join(dir, 'openapi.d.ts'), 'utf8');
    expect(types).toContain('"/api/programs/{id}"');
    expect(types).toMatch(/deliveryType: "online" \| "hybrid" \| "in_person"/);
    expect(types).toMatch(/Problem: \{/);
  });
});

describe('the typed client against the app', () => {
  test('creates, reads and lists programmes, and gets a typed problem for an unknown one', async () => {
    const code = `TC-${crypto.randomUUID().slice(0, 8)}`;
    const made = await client.createProgramme(origin, admin.token, code);
    expect(made).toMatchObject({ status: 201, total: 12, firstModule: 'T1' });
    expect(await client.moduleTitles(origin, made.id)).toEqual(['1. Typed module (hybrid)']);
    expect(await client.catalogue(origin, 200)).toContainEqual({ code, hours: 12 });
    const counts = await client.openEnrollments(origin, admin.token);
    expect(counts.every((count) => Number.isInteger(count) && count >= 0)).toBe(true);
    expect(await client.moduleTitles(origin, crypto.randomUUID())).toEqual({
      problem: 'urn:aada:problem:not-found',
      status: 404,
    });
    expect(await client.readiness(origin)).toBe('ready');
  });
});
