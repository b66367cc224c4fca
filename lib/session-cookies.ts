// The answer of a sign-in or a refresh, and what a request presents: the access, refresh, CSRF and
// device cookies (HttpOnly, Secure, SameSite=Strict; the CSRF one readable by the portal's script), the
// body a tool gets instead, and the refresh token a request carries. Used by functions/auth.ts.
import { randomBytes } from 'node:crypto';
import type { HttpRequest } from '@azure/functions';
import { z } from 'zod';
import {
  ACCESS_COOKIE,
  ACCESS_TOKEN_TTL_SECONDS,
  CSRF_COOKIE,
  cookieValue,
  csrfTokenMatches,
  issueAccessToken,
  REFRESH_COOKIE,
} from './auth';
import { forbidden } from './errors';
import type { Cookie, Reply } from './http';
import { type ClientInfo, type IssuedSession, REFRESH_TOKEN_TTL_SECONDS } from './sessions';
import { DEVICE_COOKIE, DEVICE_COOKIE_TTL_SECONDS, newDeviceCookie } from './throttle';
import { UserView } from './users';

/** The refresh cookie only travels to the auth routes (`api` is the route prefix of host.json). */
const REFRESH_COOKIE_PATH = '/api/auth';

export type ClientKind = 'browser' | 'tool';

function cookie(name: string, value: string, path: string, maxAge: number, httpOnly = true): Cookie {
  return { name, value, path, maxAge, httpOnly, secure: true, sameSite: 'Strict' };
}

function sessionCookies(accessToken: string, refreshToken: string, csrfToken: string): Cookie[] {
  return [
    cookie(ACCESS_COOKIE, accessToken, '/', ACCESS_TOKEN_TTL_SECONDS),
    cookie(REFRESH_COOKIE, refreshToken, REFRESH_COOKIE_PATH, REFRESH_TOKEN_TTL_SECONDS),
    // Readable by the portal's script, which echoes it in X-CSRF-Token; it lives as long as the session.
    cookie(CSRF_COOKIE, csrfToken, '/', REFRESH_TOKEN_TTL_SECONDS, false),
  ];
}

function clearedCookies(): Cookie[] {
  return [
    cookie(ACCESS_COOKIE, '', '/', 0),
    cookie(REFRESH_COOKIE, '', REFRESH_COOKIE_PATH, 0),
    cookie(CSRF_COOKIE, '', '/', 0, false),
  ];
}

export const signedOut = (): Reply => ({ kind: 'empty', status: 204, cookies: clearedCookies() });

/**
 * The device cookie a successful browser sign-in gets (lib/throttle.ts): it lets this browser past
 * the account ceiling later, from any network. Renewed on every sign-in; never cleared by a logout.
 */
export const deviceCookie = (userId: string): Cookie =>
  cookie(DEVICE_COOKIE, newDeviceCookie(userId), '/', DEVICE_COOKIE_TTL_SECONDS);

/** The body of a sign-in or a refresh: the tokens, and who signed in (no status or dates: that is `auth/me`). */
export const SignedInView = z.strictObject({
  accessToken: z.string().describe('A JWT for `Authorization: Bearer` (browsers also get it as a cookie)'),
  tokenType: z.literal('Bearer'),
  expiresIn: z.int().positive().describe('Seconds until the access token expires'),
  refreshToken: z
    .string()
    .optional()
    .describe('Only for `"client": "tool"`: browsers get it as an HttpOnly cookie, never in a body'),
  csrfToken: z.string().describe('Echo it in `X-CSRF-Token` on every cookie-authenticated change'),
  user: UserView.pick({ id: true, email: true, firstName: true, lastName: true, roles: true }),
});

/** The answer to a sign-in or a refresh: a fresh access token and CSRF token, the rotated session. */
export async function signedIn(
  user: UserView,
  session: IssuedSession,
  client: ClientKind,
  extraCookies: Cookie[] = [],
): Promise<Reply> {
  const accessToken = await issueAccessToken(user, session.familyId);
  const csrfToken = randomBytes(32).toString('base64url');
  const body: z.infer<typeof SignedInView> = {
    accessToken,
    tokenType: 'Bearer',
    expiresIn: ACCESS_TOKEN_TTL_SECONDS,
    // Never to a browser: script-readable refresh tokens would undo the HttpOnly cookie.
    ...(client === 'tool' ? { refreshToken: session.refreshToken } : {}),
    csrfToken,
    user: { id: user.id, email: user.email, firstName: user.firstName, lastName: user.lastName, roles: user.roles },
  };
  const cookies =
    client === 'browser' ? [...sessionCookies(accessToken, session.refreshToken, csrfToken), ...extraCookies] : [];
  return { kind: 'json', status: 200, body, cookies };
}

interface PresentedRefreshToken {
  token: string;
  via: 'body' | 'cookie';
}

/**
 * The refresh token of a request: the body's (tools) or the cookie's (browsers). The cookie is sent
 * by the browser on its own, so using it needs the CSRF header like any cookie-authenticated change.
 */
export function presentedRefreshToken(
  request: HttpRequest,
  fromBody: string | undefined,
): PresentedRefreshToken | null {
  if (fromBody !== undefined) return { token: fromBody, via: 'body' };
  const fromCookie = cookieValue(request, REFRESH_COOKIE);
  if (!fromCookie) return null;
  if (!csrfTokenMatches(request)) throw forbidden('Missing or wrong CSRF token');
  return { token: fromCookie, via: 'cookie' };
}

export const clientInfo = (request: HttpRequest, ip: string | null): ClientInfo => ({
  ip,
  userAgent: request.headers.get('user-agent'),
});
