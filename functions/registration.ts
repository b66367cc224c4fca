// Student self-registration in three steps, each public and audited:
//   1. POST auth/register/request  { email }  → always 202, whether or not the address has an account;
//      if it has none, a verification link goes to it through the outbox (valid 30 minutes).
//   2. POST auth/register/verify   { token }  → proves the address: a registration token (15 minutes).
//   3. POST auth/register/complete { registrationToken, firstName, lastName, password } → the account.
//
// Both tokens are one-time tokens (lib/one-time-links.ts: random, stored only as a hash, expiring,
// single use), of two purposes: the emailed one only verifies, the registration token only completes,
// and the request's status says which step is next.
import { z } from 'zod';
import { endpoint, type PublicChangeInput } from '../lib/endpoint';
import { created, json } from '../lib/http';
import { LinkNotice, linkNotice } from '../lib/one-time-links';
import { deliverNowInDevelopment } from '../lib/outbox';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../lib/passwords';
import {
  completeRegistration,
  enforceSourceLimit,
  REQUEST_TTL_SECONDS,
  RegisteredView,
  RegistrationTokenView,
  requestRegistration,
  toRegisteredView,
  toRegistrationTokenView,
  verifyRegistration,
} from '../lib/registration';
import { EmailAddress, PersonName } from '../lib/users';

// ---------------------------------------------------------------------------------------------------
// 1. Request a link
// ---------------------------------------------------------------------------------------------------

/** The same body, whatever happened: the answer must not tell whether the address has an account. */
const REQUEST_ACCEPTED = linkNotice(
  `If this address can register, a link is on its way to it; it is valid for ${REQUEST_TTL_SECONDS / 60} minutes.`,
);

const RequestBody = z.object({ email: EmailAddress });

async function requestLink({
  sql,
  body,
  clientIp,
  request,
  audit,
  afterCommit,
}: PublicChangeInput<unknown, unknown, z.infer<typeof RequestBody>>) {
  await requestRegistration(sql, body.email, { ip: clientIp, userAgent: request.headers.get('user-agent') });
  audit.event = 'registration_requested';
  afterCommit(deliverNowInDevelopment);
  return json(REQUEST_ACCEPTED, 202);
}

endpoint({
  name: 'auth-register-request',
  methods: ['POST'],
  route: 'auth/register/request',
  access: 'public',
  audit: true,
  phi: true,
  body: RequestBody,
  // Over the limit the request is refused, and its count is kept (the statement's only write then).
  commitRefusals: true,
  responses: { 202: LinkNotice },
  problems: [429],
  handler: requestLink,
});

// ---------------------------------------------------------------------------------------------------
// 2. Open the link
// ---------------------------------------------------------------------------------------------------

const VerifyBody = z.object({ token: z.string().max(1_000) });

async function openLink({
  sql,
  body,
  clientIp,
  audit,
}: PublicChangeInput<unknown, unknown, z.infer<typeof VerifyBody>>) {
  await enforceSourceLimit(sql, 'verify', clientIp);
  const verified = await verifyRegistration(sql, body.token);
  audit.resourceIds.registrationRequestId = verified.requestId;
  audit.event = 'registration_verified';
  return json(toRegistrationTokenView(verified));
}

endpoint({
  name: 'auth-register-verify',
  methods: ['POST'],
  route: 'auth/register/verify',
  access: 'public',
  audit: true,
  body: VerifyBody,
  // A wrong token is refused and must still count against its source (the only write before it).
  commitRefusals: true,
  responses: { 200: RegistrationTokenView },
  problems: [429],
  handler: openLink,
});

// ---------------------------------------------------------------------------------------------------
// 3. Create the account
// ---------------------------------------------------------------------------------------------------

const CompleteBody = z.object({
  registrationToken: z.string().max(1_000),
  firstName: PersonName,
  lastName: PersonName,
  // The policy (lib/password-policy.ts) checks the length itself, to answer why; the document shows the bound.
  password: z.string().meta({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH }),
});

async function completeAccount({
  sql,
  body,
  clientIp,
  audit,
}: PublicChangeInput<unknown, unknown, z.infer<typeof CompleteBody>>) {
  await enforceSourceLimit(sql, 'complete', clientIp);
  const account = await completeRegistration(sql, body);
  audit.actingUserId = account.userId;
  audit.resourceIds.registrationRequestId = account.requestId;
  audit.resourceIds.userId = account.userId;
  audit.event = 'registration_completed';
  return created(toRegisteredView(account.userId));
}

endpoint({
  name: 'auth-register-complete',
  methods: ['POST'],
  route: 'auth/register/complete',
  access: 'public',
  audit: true,
  phi: true,
  body: CompleteBody,
  // A refused attempt still counts against its source; the claim and the account are in a savepoint,
  // so a refusal rolls them back and keeps only the count.
  commitRefusals: true,
  responses: { 201: RegisteredView },
  // 409: the address got an account meanwhile.
  problems: [409, 429],
  handler: completeAccount,
});
