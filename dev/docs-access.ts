// `npm run docs:access`: writes the README's access table ("The API at a glance") from
// docs/access-policy.md. With `--check` it changes nothing and exits 1 when the README is stale.
import { readFileSync, writeFileSync } from 'node:fs';
import { README_PATH, readPolicy, renderAccessTable, withAccessTable } from './access-policy';

const readme = readFileSync(README_PATH, 'utf8');
const updated = withAccessTable(readme, renderAccessTable(readPolicy()));
if (process.argv.includes('--check')) {
  if (updated !== readme) {
    console.error('README.md: the access table differs from docs/access-policy.md; run npm run docs:access');
    process.exit(1);
  }
} else if (updated !== readme) {
  writeFileSync(README_PATH, updated);
  console.log('README.md: access table rewritten from docs/access-policy.md');
} else {
  console.log('README.md: access table already matches docs/access-policy.md');
}
