// People for tests: accounts created straight in the database (as the API would store them) and
// signed access tokens for them, so a test can call any route as any role without signing in.
import { randomBytes, randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import type { Role } from '../../lib/access';
import { issueAccessToken } from '../../lib/auth';
import { insertUser } from '../../lib/users';

export const TEST_PASSWORD = 'Correct-Horse-Battery-9';

export interface TestUser {
  id: string;
  email: string;
  firstName: string;
  lastName: string;
  roles: Role[];
  token: string;
  /** `Authorization: Bearer …` for fetch. */
  headers: Record<string, string>;
}

export async function createTestUser(
  sql: postgres.Sql,
  options: { roles: Role[]; email?: string; firstName?: string; lastName?: string; password?: string | null } = {
    roles: ['student'],
  },
): Promise<TestUser> {
  const email = options.email ?? `user-${randomBytes(5).toString('hex')}@example.test`;
  const firstName = options.firstName ?? 'Test';
  const lastName = options.lastName ?? `User${randomBytes(3).toString('hex')}`;
  const { id } = await insertUser(sql, {
    email,
    firstName,
    lastName,
    password: options.password === undefined ? TEST_PASSWORD : options.password,
    roles: options.roles,
  });
  // Every access token names its session; this one's is never ended, so the revocation check passes.
  const token = await issueAccessToken({ id, roles: options.roles }, randomUUID());
  return { id, email, firstName, lastName, roles: options.roles, token, headers: { Authorization: `Bearer ${token}` } };
}
