// Who is calling and whether they may: the access token (Bearer header or cookie) verified
// in-process, ended sessions refused, the CSRF header on cookie-authenticated changes, and the
// route's declared roles (deny by default).

import type { HttpRequest } from '@azure/functions';
import { type Caller, hasAnyRole, type Role } from './access';
import { csrfTokenMatches, presentedAccessToken, verifyAccessToken } from './auth';
import { forbidden, unauthorized } from './errors';
import { isSessionEnded } from './revocations';

/** The methods that change state (CSRF-checked when the token came from the cookie). */
export const UNSAFE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Establishes the caller. A route that is public ignores a bad token (the caller is anonymous);
 * a protected route answers 401 for a missing, malformed, expired or forged token, and requires the
 * CSRF header when the token came from the browser's cookie on a state-changing request.
 */
export async function authenticate(request: HttpRequest, isPublic: boolean): Promise<Caller | null> {
  const presented = presentedAccessToken(request);
  const caller = presented?.token ? await verifyAccessToken(presented.token) : null;
  if (isPublic) return caller;
  if (!caller) throw unauthorized(presented ? 'Your session is not valid; sign in again' : undefined);
  if (await isSessionEnded(caller.sessionId)) throw unauthorized('Your session has ended');
  if (presented?.via === 'cookie' && UNSAFE_METHODS.has(request.method) && !csrfTokenMatches(request)) {
    throw forbidden('Missing or wrong CSRF token');
  }
  return caller;
}

export function authorize(caller: Caller | null, access: 'public' | readonly Role[]): void {
  if (access === 'public') return;
  if (!caller || !hasAnyRole(caller, access)) throw forbidden();
}
