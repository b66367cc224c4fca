// CI's last step: load the compiled app the way Azure does (package.json `main`, plain Node, no
// TypeScript loader) and prove every declared route registered as a function.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { installFunctionsCoreStandIn, loadFunctionModules, registeredRoutes } from './functions-host';

async function main() {
  const root = path.resolve(__dirname, '..', '..');
  const main = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).main as string;
  const dir = path.join(root, path.dirname(main));
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.js'))
    .map((file) => path.join(dir, file));
  installFunctionsCoreStandIn();
  await loadFunctionModules(files);
  const registered = registeredRoutes();
  // Imported only now: loading lib/endpoint before the stand-in would put @azure/functions in test mode.
  const { declaredRoutes } = require('../lib/endpoint') as typeof import('../lib/endpoint');
  const declared = declaredRoutes();
  const missing = declared.filter((route) => !registered.some((r) => r.name === route.name));
  console.log(`${files.length} function modules from ${main}: ${registered.length} functions registered`);
  for (const route of registered) console.log(`  ${route.name}: [${route.methods.join(',')}] ${route.url}`);
  if (registered.length === 0 || missing.length > 0) {
    console.error(`not registered: ${missing.map((route) => route.name).join(', ') || '(nothing registered)'}`);
    process.exit(1);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
