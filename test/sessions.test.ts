// The token service on its own: access JWTs (lib/auth.ts) and refresh-token sessions
// (lib/sessions.ts) — issue, verify, expiry, rotation, reuse and family revocation — against the
// file's own database, without HTTP.
import { createHash, randomUUID } from 'node:crypto';
import { SignJWT, UnsecuredJWT } from 'jose';
import postgres from 'postgres';
import { describe, expect, test } from 'vitest';
import { AUDIENCE, ISSUER, issueAccessToken, verifyAccessToken } from '../lib/auth';
import {
  hashRefreshToken,
  issueSession,
  REFRESH_TOKEN_TTL_SECONDS,
  revokeAllForUser,
  revokeFamily,
  revokeFamilyOfToken,
  rotate,
} from '../lib/sessions';
import { useTestApp } from './helpers/app';
import { createTestUser } from './helpers/users';

const JWT_KEY = new Uint8Array(Buffer.from('sessions-test-signing-key-32-bytes-or-more!'));
const app = useTestApp({ env: { JWT_SIGNING_KEY: Buffer.from(JWT_KEY).toString('base64') } });
const client = { ip: '203.0.113.7', userAgent: 'vitest' };

interface TokenRow {
  id: string;
  family_id: string;
  token_hash: Buffer;
  expires_at: Date;
  used_at: Date | null;
  revoked_at: Date | null;
  revoke_reason: string | null;
  replaced_by: string | null;
}

const tokenRow = async (token: string) => {
  const [row] = await app.db.sql<
    TokenRow[]
  >`select * from refresh_tokens where token_hash = ${hashRefreshToken(token)}`;
  return row;
};
const tokensOf = (userId: string) =>
  app.db.sql<TokenRow[]>`select * from refresh_tokens where user_id = ${userId} order by created_at, id`;

describe('access tokens', () => {
  const sign = (claims: Record<string, unknown>, edit: (jwt: SignJWT) => SignJWT = (jwt) => jwt) =>
    edit(
      // A session id unless the case says otherwise, so each case below has one defect only.
      new SignJWT({ sid: randomUUID(), ...claims })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime('5m'),
    ).sign(JWT_KEY);
  const userId = randomUUID();

  test('an issued token verifies to its user, roles and id, with issuer, audience, iat and a 15-minute exp', async () => {
    const sessionId = randomUUID();
    const token = await issueAccessToken({ id: userId, roles: ['student', 'staff'] }, sessionId);
    const caller = await verifyAccessToken(token);
    expect(caller).toEqual({ userId, roles: ['student', 'staff'], tokenId: expect.any(String), sessionId });
    const claims = JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString());
    expect(claims).toMatchObject({ iss: ISSUER, aud: AUDIENCE, sub: userId });
    expect(claims.exp - claims.iat).toBe(15 * 60);
    expect(JSON.parse(Buffer.from(token.split('.')[0] as string, 'base64url').toString())).toEqual({
      alg: 'HS256',
      typ: 'JWT',
    });
  });

  test('a token issued from a session carries its family as `sid`, and the caller gets it back as sessionId', async () => {
    const sessionId = randomUUID();
    const token = await issueAccessToken({ id: userId, roles: ['student'] }, sessionId);
    expect(JSON.parse(Buffer.from(token.split('.')[1] as string, 'base64url').toString()).sid).toBe(sessionId);
    expect(await verifyAccessToken(token)).toEqual({
      userId,
      roles: ['student'],
      tokenId: expect.any(String),
      sessionId,
    });
    // Every token names its session: one cannot be made without.
    await expect(issueAccessToken({ id: userId, roles: ['student'] }, '')).rejects.toThrow(/session/);
  });

  test('a hand-made token with the right key and claims verifies (the checks below are the only difference)', async () => {
    expect(await verifyAccessToken(await sign({ sub: userId, roles: ['admin'] }))).not.toBeNull();
  });

  test.each<[string, () => Promise<string>]>([
    [
      'alg none (unsecured JWT)',
      () =>
        Promise.resolve(
          new UnsecuredJWT({ sub: userId, roles: ['admin'] })
            .setIssuer(ISSUER)
            .setAudience(AUDIENCE)
            .setJti(randomUUID())
            .setIssuedAt()
            .setExpirationTime('5m')
            .encode(),
        ),
    ],
    ['wrong audience', () => sign({ sub: userId, roles: ['admin'] }, (jwt) => jwt.setAudience('other-api'))],
    ['wrong issuer', () => sign({ sub: userId, roles: ['admin'] }, (jwt) => jwt.setIssuer('other-issuer'))],
    [
      'expired',
      () => sign({ sub: userId, roles: ['admin'] }, (jwt) => jwt.setExpirationTime(Math.floor(Date.now() / 1000) - 1)),
    ],
    [
      'no jti',
      () =>
        new SignJWT({ sub: userId, roles: ['admin'] })
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(JWT_KEY),
    ],
    [
      'HS512 with the same key',
      () =>
        new SignJWT({ sub: userId, roles: ['admin'] })
          .setProtectedHeader({ alg: 'HS512' })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setJti(randomUUID())
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(JWT_KEY),
    ],
    ['a subject that is not a uuid', () => sign({ sub: "1' OR '1'='1", roles: ['admin'] })],
    ['an unknown role', () => sign({ sub: userId, roles: ['superuser'] })],
    // Without a session id the revocation check has nothing to check: refused, however well signed.
    [
      'a validly signed token without a session id (sid)',
      () => sign({ sub: userId, roles: ['admin'], sid: undefined }),
    ],
    ['a session id that is not a uuid', () => sign({ sub: userId, roles: ['admin'], sid: "x' OR 1=1" })],
    ['a session id that is not a string', () => sign({ sub: userId, roles: ['admin'], sid: 42 })],
    ['roles that are not a list', () => sign({ sub: userId, roles: 'admin' })],
    [
      'another key',
      () =>
        new SignJWT({ sub: userId, roles: ['admin'] })
          .setProtectedHeader({ alg: 'HS256' })
          .setIssuer(ISSUER)
          .setAudience(AUDIENCE)
          .setJti(randomUUID())
          .setIssuedAt()
          .setExpirationTime('5m')
          .sign(new Uint8Array(32)),
    ],
    [
      'a tampered payload',
      async () => {
        const [header, , signature] = (await issueAccessToken({ id: userId, roles: ['student'] }, randomUUID())).split(
          '.',
        );
        const forged = Buffer.from(
          JSON.stringify({ sub: userId, roles: ['admin'], iss: ISSUER, aud: AUDIENCE }),
        ).toString('base64url');
        return `${header}.${forged}.${signature}`;
      },
    ],
    [
      'a tampered signature',
      async () => {
        const token = await issueAccessToken({ id: userId, roles: ['student'] }, randomUUID());
        return `${token.slice(0, -2)}${token.endsWith('AA') ? 'BB' : 'AA'}`;
      },
    ],
    ['an oversized token', () => sign({ sub: userId, roles: ['admin'], pad: 'x'.repeat(5000) })],
    ['not a JWT at all', () => Promise.resolve('hello')],
  ])('rejects %s', async (_, make) => {
    expect(await verifyAccessToken(await make())).toBeNull();
  });
});

describe('refresh-token sessions', () => {
  test('issue: a 32-byte base64url secret, stored only as its SHA-256, for about seven days, in a new family', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const first = await issueSession(app.db.sql, user, client);
    const second = await issueSession(app.db.sql, user, client);
    expect(first.refreshToken).toMatch(/^[\w-]{43}$/);
    expect(Buffer.from(first.refreshToken, 'base64url')).toHaveLength(32);
    expect(first.familyId).not.toBe(second.familyId);

    const row = await tokenRow(first.refreshToken);
    expect(row?.token_hash).toEqual(createHash('sha256').update(first.refreshToken).digest());
    expect(row).toMatchObject({ family_id: first.familyId, revoked_at: null, used_at: null });
    const lifetime = ((row?.expires_at.getTime() ?? 0) - Date.now()) / 1000;
    expect(lifetime).toBeGreaterThan(REFRESH_TOKEN_TTL_SECONDS - 60);
    expect(lifetime).toBeLessThanOrEqual(REFRESH_TOKEN_TTL_SECONDS);
    const [leak] = await app.db.sql`
      select count(*)::int as n from refresh_tokens r where r::text like ${`%${first.refreshToken}%`}`;
    expect(leak?.n).toBe(0);
  });

  test('rotate: the token is used up, points at its successor in the same family, and the user comes back', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'], firstName: 'Rosalind' });
    const session = await issueSession(app.db.sql, user, client);
    const rotation = await rotate(app.db.sql, session.refreshToken, { ip: '198.51.100.1', userAgent: 'next' });
    if (rotation.outcome !== 'rotated') throw new Error(`expected a rotation, got ${rotation.outcome}`);
    expect(rotation.session.familyId).toBe(session.familyId);
    expect(rotation.session.refreshToken).not.toBe(session.refreshToken);
    expect(rotation.user).toMatchObject({ id: user.id, email: user.email, firstName: 'Rosalind', roles: ['student'] });

    const used = await tokenRow(session.refreshToken);
    const successor = await tokenRow(rotation.session.refreshToken);
    expect(used).toMatchObject({ revoke_reason: 'rotated', replaced_by: successor?.id, family_id: session.familyId });
    expect(used?.used_at).not.toBeNull();
    expect(successor).toMatchObject({ revoked_at: null, family_id: session.familyId });
  });

  test('rotate reads status and roles now: a role granted since sign-in is in, a deactivated user is out', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const session = await issueSession(app.db.sql, user, client);
    await app.db.sql`insert into user_roles (user_id, role_name) values (${user.id}, 'instructor')`;
    const rotation = await rotate(app.db.sql, session.refreshToken, client);
    expect(rotation.outcome === 'rotated' && rotation.user.roles).toEqual(['instructor', 'student']);

    await app.db.sql`update users set status = 'inactive' where id = ${user.id}`;
    if (rotation.outcome !== 'rotated') throw new Error('expected a rotation');
    expect(await rotate(app.db.sql, rotation.session.refreshToken, client)).toEqual({ outcome: 'invalid' });
  });

  test('a rotated token presented again revokes the whole family, and only that family', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const session = await issueSession(app.db.sql, user, client);
    const other = await issueSession(app.db.sql, user, client);
    const first = await rotate(app.db.sql, session.refreshToken, client);
    if (first.outcome !== 'rotated') throw new Error('expected a rotation');
    const second = await rotate(app.db.sql, first.session.refreshToken, client);
    if (second.outcome !== 'rotated') throw new Error('expected a rotation');

    expect(await rotate(app.db.sql, session.refreshToken, client)).toEqual({
      outcome: 'reused',
      userId: user.id,
      familyId: session.familyId,
    });
    expect(await rotate(app.db.sql, second.session.refreshToken, client)).toEqual({ outcome: 'invalid' });
    const rows = await tokensOf(user.id);
    const family = rows.filter((row) => row.family_id === session.familyId);
    expect(family.map((row) => row.revoke_reason)).toEqual(['rotated', 'rotated', 'reuse_detected']);
    expect(rows.find((row) => row.family_id === other.familyId)?.revoked_at).toBeNull();
  });

  test('expired, revoked, unknown and malformed tokens are invalid, and an expired one stays untouched', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const session = await issueSession(app.db.sql, user, client);
    await app.db
      .sql`update refresh_tokens set created_at = now() - interval '8 days', expires_at = now() - interval '1 second'
                      where token_hash = ${hashRefreshToken(session.refreshToken)}`;
    expect(await rotate(app.db.sql, session.refreshToken, client)).toEqual({ outcome: 'invalid' });
    expect((await tokenRow(session.refreshToken))?.revoked_at).toBeNull();

    const loggedOut = await issueSession(app.db.sql, user, client);
    await revokeFamily(app.db.sql, loggedOut.familyId, 'logout');
    // Revoked by logout (not by rotation): invalid, and not treated as theft.
    expect(await rotate(app.db.sql, loggedOut.refreshToken, client)).toEqual({ outcome: 'invalid' });

    for (const token of ['A'.repeat(43), '', 'x'.repeat(44), "'; drop table refresh_tokens; --", 'ä'.repeat(43)]) {
      expect(await rotate(app.db.sql, token, client)).toEqual({ outcome: 'invalid' });
    }
  });

  test('concurrent rotations of one token on separate connections: exactly one wins', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const pool = postgres(app.db.url, { max: 8, onnotice: () => {} });
    try {
      await Promise.all(Array.from({ length: 8 }, () => pool`select 1`)); // open all eight connections
      for (let round = 0; round < 5; round++) {
        const session = await issueSession(app.db.sql, user, client);
        const outcomes = await Promise.all(
          Array.from({ length: 8 }, () => rotate(pool, session.refreshToken, client).then((r) => r.outcome)),
        );
        expect(outcomes.filter((outcome) => outcome === 'rotated')).toHaveLength(1);
        const family = await app.db
          .sql`select count(*)::int as n from refresh_tokens where family_id = ${session.familyId}`;
        expect(family[0]?.n).toBe(2);
      }
    } finally {
      await pool.end();
    }
  });

  test('revokeAllForUser ends every family of the user but the one kept; other users are untouched', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const bystander = await createTestUser(app.db.sql, { roles: ['student'] });
    const [kept, a, b] = [
      await issueSession(app.db.sql, user, client),
      await issueSession(app.db.sql, user, client),
      await issueSession(app.db.sql, user, client),
    ];
    const theirs = await issueSession(app.db.sql, bystander, client);
    expect(await revokeAllForUser(app.db.sql, user.id, 'password_changed', kept.familyId)).toBe(2);
    for (const session of [a, b])
      expect((await tokenRow(session.refreshToken))?.revoke_reason).toBe('password_changed');
    expect((await tokenRow(kept.refreshToken))?.revoked_at).toBeNull();
    expect((await tokenRow(theirs.refreshToken))?.revoked_at).toBeNull();

    expect(await revokeAllForUser(app.db.sql, user.id, 'user_deactivated')).toBe(1);
    expect(await revokeAllForUser(app.db.sql, user.id, 'user_deactivated')).toBe(0);
  });

  test('revokeFamilyOfToken ends the family from any of its tokens', async () => {
    const user = await createTestUser(app.db.sql, { roles: ['student'] });
    const session = await issueSession(app.db.sql, user, client);
    const rotation = await rotate(app.db.sql, session.refreshToken, client);
    if (rotation.outcome !== 'rotated') throw new Error('expected a rotation');
    // Logging out with the old (rotated) token still ends the live successor.
    expect(await revokeFamilyOfToken(app.db.sql, session.refreshToken, 'logout')).toEqual({
      userId: user.id,
      familyId: session.familyId,
    });
    expect((await tokenRow(rotation.session.refreshToken))?.revoke_reason).toBe('logout');
    expect(await revokeFamilyOfToken(app.db.sql, 'B'.repeat(43), 'logout')).toBeNull();
  });
});
