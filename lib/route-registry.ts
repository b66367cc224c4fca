// The table of declared routes, kept in memory as `endpoint()` registers them: the authorization
// matrix, the OpenAPI document and the fallback read it. It answers what a path and a template are
// served with (the methods of an `Allow` header, of a preflight), over every function declared on it,
// since Azure hands a request to the first function by name whose template matches, not the most
// specific one.

import type { HttpMethod } from '@azure/functions';
import type { DeclaredRoute } from './endpoint-types';
import { type CompiledTemplate, compileTemplate, matchTemplate, trimSlashes } from './route-templates';

const declared: DeclaredRoute[] = [];

/** Adds a route to the table (done by `endpoint()` only). */
export function declareRoute(route: DeclaredRoute): void {
  declared.push(route);
}

/** Every route the app declared, for the authorization matrix and the OpenAPI document. */
export function declaredRoutes(): readonly DeclaredRoute[] {
  return declared;
}

/**
 * Every method served on a route template, over all the functions declared with it. A template served by
 * several functions (GET and PATCH of `auth/me`) gets each preflight from just one of them, which must answer
 * for all: a browser sends the real request only when the preflight lists its method.
 */
export function methodsServedOn(route: string): string[] {
  const methods = new Set<string>();
  for (const other of declared) if (other.route === route) for (const method of other.methods) methods.add(method);
  return [...methods];
}

/** The order methods are listed in (`Allow`), whatever order the routes were declared in. */
export const METHOD_ORDER: readonly HttpMethod[] = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/** What a function registers: its methods, HEAD wherever GET is served (RFC 9110 §9.3.2), and OPTIONS (CORS). */
export function servedMethods(methods: readonly HttpMethod[]): HttpMethod[] {
  const served = new Set<HttpMethod>([...methods, ...(methods.includes('GET') ? (['HEAD'] as const) : []), 'OPTIONS']);
  return METHOD_ORDER.filter((method) => served.has(method));
}

/** The catch-all template of the fallback function: it holds the whole path in `path`. */
export const FALLBACK_ROUTE = '{*path}';

const compiledTemplates = new Map<string, CompiledTemplate>();
function compiledTemplate(route: string): CompiledTemplate {
  let template = compiledTemplates.get(route);
  if (!template) {
    template = compileTemplate(route, route);
    compiledTemplates.set(route, template);
  }
  return template;
}

/** The declared templates a path (below the route prefix, decoded) matches, whatever the method. */
export function templatesMatchingPath(path: string): string[] {
  // The host passes the catch-all's value decoded already.
  return templatesMatching(segmentsOf(path));
}

function segmentsOf(path: string): string[] {
  const trimmed = trimSlashes(path);
  return trimmed === '' ? [] : trimmed.split('/');
}

export function templatesMatching(segments: string[]): string[] {
  const routes = new Set(declared.map((route) => route.route));
  return [...routes].filter((route) => matchTemplate(compiledTemplate(route), segments) !== null);
}

/** Every method the declared routes serve on a path: the union over every template it matches. */
export function methodsServedOnPath(segments: string[]): string[] {
  const served = new Set(templatesMatching(segments).flatMap((route) => methodsServedOn(route)));
  return METHOD_ORDER.filter((method) => served.has(method));
}

/**
 * The path (segments below the route prefix) a request was for, rebuilt from the template its function
 * matched and the parameter values the host bound; the fallback's catch-all holds the whole path.
 */
export function requestSegments(route: string, params: Record<string, string>): string[] {
  if (route === FALLBACK_ROUTE) return segmentsOf(params.path ?? '');
  return segmentsOf(route).map((segment) =>
    segment.replace(/\{\*{0,2}([A-Za-z_]\w*)[^}]*\}/g, (_whole, name: string) => params[name] ?? ''),
  );
}
