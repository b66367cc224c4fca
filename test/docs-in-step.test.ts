// What docs/architecture.md tells a newcomer about caching must be what lib/http.ts does: the table of
// cache policies is written by hand, so this reads it and checks every row against the real response
// helper sends over HTTP (with the configured max-ages), and that every policy has exactly one row.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { REPO_ROOT } from '../dev/database';
import { config } from '../lib/config';
import type { CachePolicy } from '../lib/http';
import { useTestApp } from './helpers/app';

// The wrapper's fixture routes answer under each cache policy: /fixture/cache/<policy>.
const app = useTestApp({ fixtures: ['wrapper-routes.ts'] });

/** Every policy, checked by the compiler: a new CachePolicy that is missing here fails the type-check. */
const POLICIES = { 'no-store': true, public: true, private: true, immutable: true } satisfies Record<CachePolicy, true>;

interface DocumentedRow {
  policy: string;
  cacheControl: string;
  vary: string | null;
}

/** The rows of the "Cache policies" table: `cache` name, `Cache-Control` value and any `Vary`. */
function documentedRows(): DocumentedRow[] {
  const text = readFileSync(path.join(REPO_ROOT, 'docs', 'architecture.md'), 'utf8');
  const section = text.split('## Cache policies')[1]?.split('\n## ')[0] ?? '';
  return (
    section
      .split('\n')
      // Body rows only: the header row names its columns in backticks too.
      .filter((line) => line.startsWith('| `') && !line.startsWith('| `cache` |'))
      .map((line) => {
        const [name = '', headers = ''] = line.split('|').slice(1, 3);
        const values = [...headers.matchAll(/`([^`]+)`/g)].map((match) => match[1] as string);
        const vary = values.find((value) => value.startsWith('Vary: '));
        return {
          policy: name.match(/`([^`]+)`/)?.[1] ?? '',
          cacheControl: values[0] ?? '',
          vary: vary ? vary.slice('Vary: '.length) : null,
        };
      })
  );
}

/** `public, max-age=PUBLIC_CACHE_MAX_AGE_SECONDS` with the configured number in place of the setting's name. */
function withSettings(value: string): string {
  const settings = config() as unknown as Record<string, unknown>;
  return value.replace(/\b[A-Z][A-Z0-9_]+\b/g, (name) => (name in settings ? String(settings[name]) : name));
}

test('the cache-policy table in docs/architecture.md is what the response helper sends', async () => {
  const rows = documentedRows();
  expect(rows.map((row) => row.policy).sort()).toEqual(Object.keys(POLICIES).sort());
  for (const row of rows) {
    const { headers, status } = await app.api(`/fixture/cache/${row.policy}`);
    expect(status, row.policy).toBe(200);
    expect(headers.get('cache-control'), row.policy).toBe(withSettings(row.cacheControl));
    if (row.vary) expect(headers.get('vary'), row.policy).toBe(row.vary);
  }
});
