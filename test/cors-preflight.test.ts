// CORS preflights of every route template in the route table: a template served by several functions
// (GET and PATCH of `auth/me`) must list every method served on it, or a browser refuses the real request.
import { describe, expect, test } from 'vitest';
import { type HostUnderTest, useAzureOrderedHost, useTestApp } from './helpers/app';

const PORTAL = 'https://admin.portal.test';
const app = useTestApp({ env: { CORS_ALLOWED_ORIGINS: PORTAL } });
// Azure gives a preflight to the first function by name whose template matches (`students-get` takes
// OPTIONS of `students/search`): the answer must be the path's, whichever function gives it.
const azure = useAzureOrderedHost();
const HOSTS: [string, HostUnderTest][] = [
  ['local precedence', app],
  ['Azure function-name order', azure],
];

/** A URL of the template with every parameter filled (a uuid, or a real role name). */
function pathOf(route: string): string {
  return route.replace(/\{\*{0,2}([A-Za-z_]\w*)[^}]*\}/g, (_whole, name: string) =>
    name === 'role' ? 'student' : crypto.randomUUID(),
  );
}

describe('CORS preflight', () => {
  test.each(HOSTS)(
    'every template answers with every method served on it, whichever method is asked for (%s)',
    async (_name, host) => {
      const { declaredRoutes } = await import('../lib/endpoint');
      const methodsByTemplate = new Map<string, Set<string>>();
      for (const route of declaredRoutes()) {
        const methods = methodsByTemplate.get(route.route) ?? new Set<string>();
        for (const method of route.methods) methods.add(method);
        methodsByTemplate.set(route.route, methods);
      }
      // The templates the finding named are shared by several functions: the check below is not vacuous.
      expect([...methodsByTemplate.values()].filter((methods) => methods.size > 1).length).toBeGreaterThanOrEqual(5);

      const wrong: string[] = [];
      for (const [template, methods] of methodsByTemplate) {
        const path = `/${pathOf(template)}`;
        for (const method of methods) {
          const response = await host.api(path, {
            method: 'OPTIONS',
            headers: { Origin: PORTAL, 'Access-Control-Request-Method': method },
          });
          const allowed = new Set(
            (response.headers.get('access-control-allow-methods') ?? '').split(',').map((m) => m.trim()),
          );
          const missing = [...methods].filter((m) => !allowed.has(m));
          if (response.status !== 204 || missing.length > 0) {
            wrong.push(`${method} ${template}: ${response.status}, missing ${missing.join(', ') || 'nothing'}`);
          }
          expect(response.headers.get('access-control-allow-origin')).toBe(PORTAL);
        }
      }
      expect(wrong).toEqual([]);
    },
  );
});
