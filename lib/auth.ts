// Access tokens: short-lived HS256 JWTs carrying the user id, roles and the session they belong to
// (`sid`: the refresh-token family), verified in-process with no database round trip. Browsers carry
// them in an HttpOnly cookie (with a double-submit CSRF token for mutations); tools send
// `Authorization: Bearer`.
import { hkdfSync, randomUUID, timingSafeEqual, webcrypto } from 'node:crypto';
import type { HttpRequest } from '@azure/functions';
import { type Caller, ROLES, type Role } from './access';
import { ConfigError, config } from './config';

export const ACCESS_TOKEN_TTL_SECONDS = 15 * 60;
export const ISSUER = 'aada-lms-api';
export const AUDIENCE = 'aada-lms';

/** Cookie names. `__Host-` cookies are Secure, Path=/ and cannot be set by a subdomain. */
export const ACCESS_COOKIE = '__Host-aada-access';
export const CSRF_COOKIE = '__Host-aada-csrf';
export const REFRESH_COOKIE = '__Secure-aada-refresh';
export const CSRF_HEADER = 'x-csrf-token';

const DEMO_JWT_KEY = 'ZGVtby1vbmx5LWp3dC1zaWduaW5nLWtleS1ub3QtZm9yLXByb2R1Y3Rpb24=';

let signingKey: Uint8Array | undefined;
function key(): Uint8Array {
  if (!signingKey) {
    const cfg = config();
    const base64 = cfg.JWT_SIGNING_KEY ?? (cfg.APP_ENV === 'production' ? undefined : DEMO_JWT_KEY);
    if (!base64) throw new ConfigError('JWT_SIGNING_KEY is required in production');
    const bytes = Buffer.from(base64, 'base64');
    if (bytes.length < 32) throw new ConfigError('JWT_SIGNING_KEY: at least 32 bytes, base64 encoded');
    signingKey = new Uint8Array(bytes);
  }
  return signingKey;
}

// The key as WebCrypto holds it, imported once: jose would import a raw key again on every signature
// and every verification (bench/README.md, "Where a request's time goes").
let hmacKey: Promise<webcrypto.CryptoKey> | undefined;
function tokenKey(): Promise<webcrypto.CryptoKey> {
  hmacKey ??= webcrypto.subtle.importKey('raw', key(), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
  return hmacKey;
}

/**
 * A key for another signature this API makes (the device cookie of lib/throttle.ts), derived from
 * JWT_SIGNING_KEY with HKDF under its own label: one secret to provision and rotate (it fails closed
 * in production like the token key), and no signature of one kind can pass for another.
 */
export function derivedSigningKey(label: string): Buffer {
  return Buffer.from(hkdfSync('sha256', key(), Buffer.alloc(0), `aada-lms-api ${label}`, 32));
}

// jose is an ES module; loaded once, on first use, so cold starts that need no token skip it.
let joseModule: Promise<typeof import('jose', { with: { 'resolution-mode': 'import' }})> | undefined;
const jose = () => {
  joseModule ??= import('jose');
  return joseModule;
};

/**
 * Signs an access token for `user`. `sessionId` is the refresh-token family the token was issued
 * from (sign-in, refresh): every token carries one, so every token can be revoked with its session
 * (lib/revocations.ts), and a route can tell which session is calling (change password keeps it).
 */
export async function issueAccessToken(
  user: { id: string; roles: readonly Role[] },
  sessionId: string,
): Promise<string> {
  if (!UUID.test(sessionId)) throw new TypeError('an access token needs the uuid of its session');
  const { SignJWT } = await jose();
  return new SignJWT({ roles: [...user.roles], sid: sessionId })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(user.id)
    .setJti(randomUUID())
    .setIssuedAt()
    .setExpirationTime(`${ACCESS_TOKEN_TTL_SECONDS}s`)
    .sign(await tokenKey());
}

const ROLE_SET = new Set<string>(ROLES);
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * Tokens verified already, with their expiry: a client presents the same token on every request of
 * its 15 minutes, and verifying it (jose's HMAC through WebCrypto) was a fifth of a signed-in request.
 * Keyed by the whole token, whose signature is a function of its text, so a hit is a token this
 * process verified; its expiry is checked again on every hit, and revocation is not cached (it is
 * lib/revocations.ts's, after this). Bounded; only valid tokens enter, so forged ones cannot fill it.
 */
const verified = new Map<string, { caller: Caller; exp: number }>();
const VERIFIED_MAX = 10_000;

/** Seconds since the epoch, as jose compares `exp` (a token is expired once `exp <= now`). */
const nowSeconds = () => Math.floor(Date.now() / 1000);

/** The caller a token speaks for, or null when it is malformed, expired, forged or not ours. */
export async function verifyAccessToken(token: string): Promise<Caller | null> {
  if (token.length > 4096) return null;
  const known = verified.get(token);
  if (known && known.exp > nowSeconds()) return { ...known.caller, roles: [...known.caller.roles] };
  if (known) verified.delete(token);
  const checked = await verifySignedToken(token);
  if (!checked) return null;
  if (verified.size >= VERIFIED_MAX) verified.delete(verified.keys().next().value as string);
  verified.set(token, checked);
  return { ...checked.caller, roles: [...checked.caller.roles] };
}

async function verifySignedToken(token: string): Promise<{ caller: Caller; exp: number } | null> {
  const { jwtVerify } = await jose();
  try {
    const { payload } = await jwtVerify(token, await tokenKey(), {
      algorithms: ['HS256'],
      issuer: ISSUER,
      audience: AUDIENCE,
      requiredClaims: ['sub', 'iat', 'exp', 'jti'],
    });
    const { roles, sid } = payload;
    if (!payload.sub || !UUID.test(payload.sub) || !Array.isArray(roles)) return null;
    if (!roles.every((role) => typeof role === 'string' && ROLE_SET.has(role))) return null;
    // No session, no revocation check: a token without one (never issued by this app) is refused.
    if (typeof sid !== 'string' || !UUID.test(sid)) return null;
    const caller = { userId: payload.sub, roles: roles as Role[], tokenId: payload.jti as string, sessionId: sid };
    return { caller, exp: payload.exp as number };
  } catch {
    return null;
  }
}

export function cookieValue(request: HttpRequest, name: string): string | null {
  const header = request.headers.get('cookie');
  if (!header) return null;
  for (const part of header.split(';')) {
    const index = part.indexOf('=');
    if (index > 0 && part.slice(0, index).trim() === name) return part.slice(index + 1).trim();
  }
  return null;
}

export interface PresentedToken {
  token: string;
  via: 'bearer' | 'cookie';
}

/** The access token a request presents: the Bearer header first, else the access cookie. */
export function presentedAccessToken(request: HttpRequest): PresentedToken | null {
  const authorization = request.headers.get('authorization');
  if (authorization) {
    const match = /^Bearer ([A-Za-z0-9._~+/=-]+)$/.exec(authorization.trim());
    return match ? { token: match[1] as string, via: 'bearer' } : { token: '', via: 'bearer' };
  }
  const cookie = cookieValue(request, ACCESS_COOKIE);
  return cookie ? { token: cookie, via: 'cookie' } : null;
}

/**
 * Double-submit CSRF check for requests authenticated by cookie: the `X-CSRF-Token` header must
 * equal the CSRF cookie. A cross-site page can neither read that cookie nor send the custom header
 * without a CORS preflight that only the configured portals pass.
 */
export function csrfTokenMatches(request: HttpRequest): boolean {
  const cookie = cookieValue(request, CSRF_COOKIE);
  const header = request.headers.get(CSRF_HEADER);
  if (!cookie || !header || cookie.length !== header.length) return false;
  return timingSafeEqual(Buffer.from(cookie), Buffer.from(header));
}
