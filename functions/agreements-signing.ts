// The public signing steps, by the emailed one-time link (the token travels in the body, never the
// URL): open (the agreement, its template and the ESIGN disclosure; the first opening is recorded),
// consent (the disclosure accepted, with time, address and user agent), sign (typed name, drawn
// signature and the portal's nested form, validated field by field against the template), and after
// signing the status and the signer's own sealed copy, still readable by the same link for
// AGREEMENT_READABLE_DAYS. The ESIGN Act's paper alternatives by the same link: withdrawing consent
// before signing (the link is then spent and the agreement needs paper), and asking for a paper copy
// (any time, recorded once). A consent to an earlier disclosure version must be given again.
// Rate-limited per source; every answer no-store. Also public: verify, which says whether a PDF is one
// of the school's sealed agreements, unchanged.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { sealAgreement } from '../lib/agreement-document';
import { ESIGN_DISCLOSURE, type FormData, formSchemaFor } from '../lib/agreement-template';
import {
  agreementBySealedDigest,
  consentIsCurrent,
  findAgreement,
  formDataOf,
  insertSignature,
  markViewed,
  recordConsent,
  recordConsentWithdrawal,
  recordEvent,
  recordPaperCopyRequest,
  recordSignerSignature,
  requireOpen,
  requireStatus,
} from '../lib/agreements';
import { SignaturePng } from '../lib/agreements-http';
import { config } from '../lib/config';
import { endpoint, type HandlerInput } from '../lib/endpoint';
import { badRequest, fieldErrors } from '../lib/errors';
import { openFile } from '../lib/files';
import { json, streamed } from '../lib/http';
import { findToken, invalidToken, looksLikeToken, redeemToken } from '../lib/one-time-links';
import { pngDecodes, verifySeal } from '../lib/pdf';
import { hitRateLimit, refuseOverLimit, sourceKey } from '../lib/throttle';
import { PersonName } from '../lib/users';

const SOURCE_LIMIT = 60;
const SOURCE_WINDOW_SECONDS = 60;
const Token = z.string().max(100);

type Input = Pick<HandlerInput<unknown, unknown, { token: string }>, 'sql' | 'body' | 'clientIp' | 'request'>;

const originOf = ({ clientIp, request }: Input) => ({
  userId: null,
  clientIp,
  userAgent: request.headers.get('user-agent'),
});

/** Counts the request against its source, then finds the agreement the link opens (400 otherwise). */
async function agreementOfLink(input: Input, used: 'refused' | 'allowed') {
  const { sql, body, clientIp } = input;
  refuseOverLimit(
    await hitRateLimit(sql, sourceKey(sql, 'agreement-signing', clientIp), SOURCE_LIMIT, SOURCE_WINDOW_SECONDS),
  );
  // A malformed token still costs the one indexed look-up a real one does.
  const [link] = await findToken(sql, 'agreement_signing', looksLikeToken(body.token) ? body.token : '-', { used });
  const row = link?.signed_document_id ? await findAgreement(sql, link.signed_document_id, null, true) : null;
  if (!row) throw invalidToken('token', 'from the email the school sent you, or ask the school for a new one');
  return row;
}

const publicView = (row: NonNullable<Awaited<ReturnType<typeof findAgreement>>>) => ({
  id: row.id,
  status: row.status,
  template: { name: row.template_name, version: row.template_version },
  signedAt: row.student_signed_at?.toISOString() ?? null,
  completedAt: row.completed_at?.toISOString() ?? null,
  copyAvailable: row.sealed_file_id !== null,
  consentWithdrawnAt: row.consent_withdrawn_at?.toISOString() ?? null,
  paperCopyRequestedAt: row.paper_copy_requested_at?.toISOString() ?? null,
});

endpoint({
  name: 'agreements-signing-open',
  methods: ['POST'],
  route: 'agreements/signing/open',
  access: 'public',
  phi: true,
  commitRefusals: true,
  body: z.strictObject({ token: Token }),
  handler: async function openAgreement(input) {
    const row = await agreementOfLink(input, 'refused');
    requireOpen(row, 'it can no longer be signed');
    await markViewed(input.sql, row, originOf(input));
    input.audit.resourceIds.agreementId = row.id;
    return json({
      ...publicView(row),
      schema: row.schema,
      formData: formDataOf(row),
      disclosure: ESIGN_DISCLOSURE,
      consented: consentIsCurrent(row),
      // Consented to an earlier text of the disclosure: the portal shows the new one and asks again.
      reconsentRequired: row.consent_version !== null && !consentIsCurrent(row),
    });
  },
});

endpoint({
  name: 'agreements-signing-consent',
  methods: ['POST'],
  route: 'agreements/signing/consent',
  access: 'public',
  phi: true,
  commitRefusals: true,
  body: z.strictObject({
    token: Token,
    disclosureVersion: z.literal(ESIGN_DISCLOSURE.version),
    accept: z.literal(true),
  }),
  handler: async function consentToSignElectronically(input) {
    const row = await agreementOfLink(input, 'refused');
    requireOpen(row, 'it can no longer be signed');
    await recordConsent(input.sql, row, originOf(input));
    input.audit.resourceIds.agreementId = row.id;
    return json({ ...publicView(row), consented: true });
  },
});

const Signing = z.strictObject({
  token: Token,
  typedName: PersonName,
  signaturePng: SignaturePng,
  /** The portal's nested form: `{ student: {...}, acknowledgements: {...}, program: {...} }`. */
  formData: z.record(z.string(), z.unknown()),
});

/** The signer's part validated against the template; the school's part, if sent back, must be unchanged. */
function signedForm(
  row: NonNullable<Awaited<ReturnType<typeof findAgreement>>>,
  posted: Record<string, unknown>,
): FormData {
  const school = formDataOf(row);
  const theirs: Record<string, unknown> = {};
  for (const [sectionId, values] of Object.entries(posted)) {
    const prefilled = school[sectionId];
    if (!prefilled) theirs[sectionId] = values;
    else if (JSON.stringify(values) !== JSON.stringify(prefilled)) {
      throw badRequest('The school’s part of the agreement cannot be changed', [
        { field: `body.formData.${sectionId}`, message: 'set by the school' },
      ]);
    }
  }
  const parsed = formSchemaFor(row.schema, 'signer').safeParse(theirs);
  if (!parsed.success) {
    const errors = fieldErrors('body', parsed.error).map((e) => ({
      ...e,
      field: e.field.replace('body.', 'body.formData.'),
    }));
    throw badRequest('Some answers are missing or invalid', errors);
  }
  return { ...school, ...parsed.data };
}

endpoint({
  name: 'agreements-signing-sign',
  methods: ['POST'],
  route: 'agreements/signing/sign',
  access: 'public',
  phi: true,
  commitRefusals: true,
  body: Signing,
  maxBodyBytes: 512 * 1024,
  handler: async function signAgreement(input) {
    const { sql, body } = input;
    const row = await agreementOfLink(input, 'refused');
    requireOpen(row, 'it can no longer be signed');
    if (!consentIsCurrent(row)) {
      throw row.consent_version
        ? badRequest('The disclosure changed since you consented: read it and consent again', [
            { field: 'body.token', message: `consent to disclosure version ${ESIGN_DISCLOSURE.version} needed` },
          ])
        : badRequest('Consent to sign electronically first', [{ field: 'body.token', message: 'no ESIGN consent' }]);
    }
    const form = signedForm(row, body.formData);
    if (!(await pngDecodes(body.signaturePng))) {
      throw badRequest('The signature image cannot be read', [
        { field: 'body.signaturePng', message: 'not a PNG image' },
      ]);
    }
    // From here on every write is the signature itself: a savepoint keeps a late refusal from keeping half.
    await sql.savepoint(async (tx) => {
      const readable = config().AGREEMENT_READABLE_DAYS * 24 * 3600;
      await redeemToken(tx, 'agreement_signing', body.token, { readableForSeconds: readable });
      const origin = originOf(input);
      const kind = row.user_id ? 'student' : 'applicant';
      await insertSignature(
        tx,
        row.id,
        { kind, signerUserId: row.user_id, typedName: body.typedName, png: body.signaturePng },
        origin,
      );
      await recordSignerSignature(tx, row, form);
      await recordEvent(tx, row.id, 'signed', origin);
      if (!row.requires_counter_signature) {
        const signed = await findAgreement(tx, row.id, null);
        await sealAgreement(tx as never, signed!, origin);
      }
    });
    input.audit.resourceIds.agreementId = row.id;
    return json(publicView((await findAgreement(sql, row.id, null))!));
  },
});

endpoint({
  name: 'agreements-signing-withdraw-consent',
  methods: ['POST'],
  route: 'agreements/signing/withdraw-consent',
  access: 'public',
  phi: true,
  commitRefusals: true,
  body: z.strictObject({ token: Token }),
  handler: async function withdrawConsent(input) {
    const { sql, body } = input;
    // A spent link is still found, so a withdrawal after signing (or a second one) hears why it is refused.
    const row = await agreementOfLink(input, 'allowed');
    requireOpen(row, 'consent can be withdrawn only before signing');
    // The link is spent: nothing can be signed with it, but status and paper copy still read with it.
    const readable = config().AGREEMENT_READABLE_DAYS * 24 * 3600;
    const [spent] = await redeemToken(sql, 'agreement_signing', body.token, { readableForSeconds: readable });
    if (!spent) throw invalidToken('token', 'from the email the school sent you, or ask the school for a new one');
    await recordConsentWithdrawal(sql, row, originOf(input));
    input.audit.resourceIds.agreementId = row.id;
    return json(publicView((await findAgreement(sql, row.id, null))!));
  },
});

endpoint({
  name: 'agreements-signing-paper-copy',
  methods: ['POST'],
  route: 'agreements/signing/paper-copy',
  access: 'public',
  phi: true,
  commitRefusals: true,
  body: z.strictObject({ token: Token }),
  handler: async function requestPaperCopy(input) {
    // Before or after signing, and after withdrawing consent: the right to paper lasts (ESIGN).
    const row = await agreementOfLink(input, 'allowed');
    requireStatus(row, ['pending', 'viewed', 'student_signed', 'completed', 'paper_required'], 'the school closed it');
    const requestedAt = await recordPaperCopyRequest(input.sql, row, originOf(input));
    input.audit.resourceIds.agreementId = row.id;
    return json({ ...publicView(row), paperCopyRequestedAt: requestedAt.toISOString() });
  },
});

endpoint({
  name: 'agreements-signing-status',
  methods: ['POST'],
  route: 'agreements/signing/status',
  access: 'public',
  phi: true,
  commitRefusals: true,
  body: z.strictObject({ token: Token }),
  handler: async function signingStatus(input) {
    return json(publicView(await agreementOfLink(input, 'allowed')));
  },
});

endpoint({
  name: 'agreements-signing-copy',
  methods: ['POST'],
  route: 'agreements/signing/copy',
  access: 'public',
  phi: true,
  commitRefusals: true,
  body: z.strictObject({ token: Token }),
  handler: async function signersCopy(input) {
    const row = await agreementOfLink(input, 'allowed');
    if (!row.sealed_file_id)
      throw badRequest('Your copy is ready once the school has counter-signed', [
        { field: 'body.token', message: 'not completed yet' },
      ]);
    const opened = await openFile(input.sql, row.sealed_file_id);
    if (!opened) throw badRequest('Your copy is not available', [{ field: 'body.token', message: 'not available' }]);
    await recordEvent(input.sql, row.id, 'downloaded', originOf(input));
    return streamed(opened.content, 'application/pdf', {
      'Content-Disposition': `attachment; filename="agreement-${row.id}.pdf"`,
      'Content-Length': String(opened.file.byteSize),
    });
  },
});

const MAX_VERIFY_BYTES = 20 * 1024 * 1024;

endpoint({
  name: 'agreements-verify',
  methods: ['POST'],
  route: 'agreements/verify',
  access: 'public',
  commitRefusals: true,
  audit: true,
  body: z.strictObject({ pdf: z.base64().max(Math.ceil((MAX_VERIFY_BYTES * 4) / 3)) }),
  maxBodyBytes: Math.ceil((MAX_VERIFY_BYTES * 4) / 3) + 1024,
  handler: async function verifyAgreement({ sql, body, clientIp }) {
    refuseOverLimit(await hitRateLimit(sql, sourceKey(sql, 'agreement-verify', clientIp), 20, 60));
    const pdf = Buffer.from(body.pdf, 'base64');
    if (!pdf.subarray(0, 5).equals(Buffer.from('%PDF-'))) {
      throw badRequest('This is not a PDF file', [{ field: 'body.pdf', message: 'not a PDF' }]);
    }
    const seal = verifySeal(pdf);
    const match = await agreementBySealedDigest(sql, createHash('sha256').update(pdf).digest());
    const verified = seal.sealed && seal.ours && seal.intact && match !== null;
    return json({
      verified,
      sealed: seal.sealed,
      ours: seal.sealed ? seal.ours : false,
      unchanged: seal.sealed ? seal.intact && match !== null : false,
      agreement:
        verified && match
          ? { id: match.id, templateVersion: match.template_version, completedAt: match.completed_at.toISOString() }
          : null,
      reason: verified
        ? null
        : seal.sealed
          ? 'The file was changed after sealing, or it is not a sealed agreement of this school'
          : seal.reason,
    });
  },
});
