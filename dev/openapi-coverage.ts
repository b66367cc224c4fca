// Prints how much of the OpenAPI contract is declared: routes whose 2xx answers have schemas, how many 2xx
// answers that is, and the routes still without (`npx tsx dev/openapi-coverage.ts`).
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { installFunctionsCoreStandIn, loadFunctionModules } from './functions-host';

async function main() {
  const dir = path.resolve(__dirname, '..', 'functions');
  const files = readdirSync(dir)
    .filter((file) => file.endsWith('.ts'))
    .map((file) => path.join(dir, file));
  installFunctionsCoreStandIn();
  await loadFunctionModules(files);
  // Imported only now: loading lib/endpoint before the stand-in would put @azure/functions in test mode.
  const { declaredRoutes } = require('../lib/endpoint') as typeof import('../lib/endpoint');
  const { contractCoverage } = require('../lib/openapi') as typeof import('../lib/openapi');
  const coverage = contractCoverage(declaredRoutes());
  console.log(
    `${coverage.routesWithResponses} of ${coverage.routes} routes declare their 2xx answers (${coverage.successResponses} 2xx responses with a schema)`,
  );
  if (coverage.missing.length > 0) console.log(`without: ${coverage.missing.join(', ')}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
