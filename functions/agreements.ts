// Enrollment agreement routes for staff and the signed-in student: templates (admin), sending,
// reading, the trail, resending, voiding, counter-signing and the sealed PDF. The public signing
// steps and verification are functions/agreements-signing.ts; rules and SQL are lib/agreements.ts.
//
// Why one file over 350 lines: it holds only route declarations and request schemas, one short entry
// per route of one area; the schemas of sending (a student or a lead, the form fields) are the bulk.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { sealAgreement } from '../lib/agreement-document';
import { AgreementSchema, type FormData, formSchemaFor } from '../lib/agreement-template';
import {
  AGREEMENT_ORDER,
  AGREEMENT_READERS,
  AGREEMENT_STAFF,
  AGREEMENT_STATUSES,
  agreementPageQuery,
  eventsOf,
  findAgreement,
  insertAgreement,
  insertPdfTemplate,
  insertSignature,
  insertTemplate,
  listTemplates,
  markCounterSigned,
  pdfTemplateView,
  RESENDABLE,
  recordEvent,
  requireStatus,
  resolveRecipient,
  setTemplateActive,
  signerOf,
  templateToSend,
  toTemplateView,
  VOIDABLE,
  voidAgreement,
} from '../lib/agreements';
import { agreementListItem, agreementView, eventView, SignaturePng, sendSigningLink } from '../lib/agreements-http';
import { type ChangeInput, endpoint } from '../lib/endpoint';
import { badRequest, fieldErrors, notFound, payloadTooLarge } from '../lib/errors';
import { openFile } from '../lib/files';
import { created, json, streamed } from '../lib/http';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { PdfRefused, sanitisePdf } from '../lib/pdf';
import { multiLine, singleLine } from '../lib/text';
import { EmailAddress, PersonName } from '../lib/users';

const IdParams = z.object({ id: z.uuid() });

const NewTemplate = z.strictObject({
  name: singleLine(200),
  version: singleLine(40),
  requiresCounterSignature: z.boolean().default(true),
  schema: AgreementSchema,
});

endpoint({
  name: 'agreement-templates-create',
  methods: ['POST'],
  route: 'agreements/templates',
  access: ['admin'],
  body: NewTemplate,
  maxBodyBytes: 256 * 1024,
  handler: async function createTemplate({ sql, body, caller, audit }) {
    const sha256 = createHash('sha256').update(JSON.stringify(body.schema)).digest();
    const row = await insertTemplate(sql, body, caller.userId, sha256);
    audit.resourceIds.templateId = row.id;
    return created(toTemplateView(row), `/api/agreements/templates/${row.id}`);
  },
});

endpoint({
  name: 'agreement-templates-list',
  methods: ['GET'],
  route: 'agreements/templates',
  access: AGREEMENT_READERS,
  handler: async function listAgreementTemplates({ sql }) {
    return json({ items: (await listTemplates(sql)).map(toTemplateView) });
  },
});

const MAX_TEMPLATE_PDF_BYTES = 10 * 1024 * 1024;

const TemplateUpload = z.strictObject({
  name: singleLine(200),
  version: singleLine(40),
  /** The PDF, base64; at most 10 MB decoded. */
  pdf: z.base64().max(Math.ceil((MAX_TEMPLATE_PDF_BYTES * 4) / 3) + 4),
});

async function uploadTemplatePdf({
  sql,
  body,
  caller,
  audit,
}: ChangeInput<unknown, unknown, z.infer<typeof TemplateUpload>>) {
  const upload = Buffer.from(body.pdf, 'base64');
  if (upload.length > MAX_TEMPLATE_PDF_BYTES) throw payloadTooLarge(MAX_TEMPLATE_PDF_BYTES);
  const clean = await sanitisePdf(upload).catch((error: unknown) => {
    if (error instanceof PdfRefused)
      throw badRequest('This PDF cannot be a template', [{ field: 'body.pdf', message: error.message }]);
    throw error;
  });
  const row = await insertPdfTemplate(sql, body, clean.bytes, caller.userId);
  audit.resourceIds.templateId = row.id;
  return created(
    { ...pdfTemplateView(row), pages: clean.pages, removed: clean.removed },
    `/api/agreements/templates/${row.id}`,
  );
}

endpoint({
  name: 'agreement-templates-upload',
  methods: ['POST'],
  route: 'agreements/templates/uploads',
  access: ['admin'],
  body: TemplateUpload,
  maxBodyBytes: Math.ceil((MAX_TEMPLATE_PDF_BYTES * 4) / 3) + 64 * 1024,
  handler: uploadTemplatePdf,
});

for (const [action, active] of [
  ['activate', true],
  ['retire', false],
] as const) {
  endpoint({
    name: `agreement-templates-${action}`,
    methods: ['POST'],
    route: `agreements/templates/{id}/${action}`,
    access: ['admin'],
    params: IdParams,
    handler: async function changeTemplateState({ sql, params }) {
      const row = await setTemplateActive(sql, params.id, active);
      if (!row) throw notFound('No such template');
      return json(toTemplateView(row));
    },
  });
}

const Recipient = z.union([
  z.strictObject({ studentId: z.uuid() }),
  z.strictObject({ leadId: z.uuid() }),
  z.strictObject({
    email: EmailAddress,
    firstName: PersonName,
    lastName: PersonName,
    phone: z
      .string()
      .regex(/^\+?[0-9 ().-]{7,20}$/, 'a phone number')
      .optional(),
  }),
]);

const NewAgreement = z.strictObject({
  templateId: z.uuid().optional(),
  recipient: Recipient,
  courseType: z.enum(['twenty_week', 'expanded_functions']).optional(),
  /** The school's part of the form (programme, dates, tuition), nested by section. */
  prefill: z.record(z.string(), z.record(z.string(), z.union([z.string(), z.boolean()]))).default({}),
});

endpoint({
  name: 'agreements-send',
  methods: ['POST'],
  route: 'agreements',
  access: AGREEMENT_READERS,
  phi: true,
  body: NewAgreement,
  handler: async function sendAgreement({ sql, body, caller, clientIp, request, audit }) {
    const template = await templateToSend(sql, body.templateId);
    const prefill = formSchemaFor(template.schema, 'school').safeParse(body.prefill);
    if (!prefill.success) {
      const errors = fieldErrors('body', prefill.error).map((e) => ({
        ...e,
        field: e.field.replace('body.', 'body.prefill.'),
      }));
      throw badRequest('The school’s part of the agreement is incomplete or invalid', errors);
    }
    const person = await resolveRecipient(sql, body.recipient, caller.userId);
    const id = await insertAgreement(sql, {
      template,
      person,
      courseType: body.courseType ?? null,
      prefill: prefill.data as FormData,
      by: caller.userId,
    });
    const origin = { userId: caller.userId, clientIp, userAgent: request.headers.get('user-agent') };
    await recordEvent(sql, id, 'sent', origin, { templateId: template.id });
    await sendSigningLink(sql, id, person);
    audit.resourceIds.agreementId = id;
    const row = await findAgreement(sql, id, caller);
    return created(agreementView(row!), `/api/agreements/${id}`);
  },
});

const EARLIEST_DAY = '2000-01-01';
const LATEST_DAY = '2099-12-31';
const schoolDay = z.iso
  .date({ error: 'A date as YYYY-MM-DD' })
  .refine((day) => day >= EARLIEST_DAY && day <= LATEST_DAY, {
    message: `Must be between ${EARLIEST_DAY} and ${LATEST_DAY}`,
  });

// Strict: a misspelt filter (`?student_id=`) must not silently widen a list of personal data.
const AgreementListQuery = z
  .strictObject({
    limit: limitSchema,
    cursor: AGREEMENT_ORDER.cursor,
    status: z.enum(AGREEMENT_STATUSES).optional(),
    studentId: z.uuid().optional(),
    leadId: z.uuid().optional(),
    /** Whose signer asked for a paper copy (`true`) or not (`false`). */
    paperCopyRequested: z
      .enum(['true', 'false'])
      .transform((value) => value === 'true')
      .optional(),
    /** Inclusive school days (Atlanta time) of sending and of the signer's signature. */
    sentFrom: schoolDay.optional(),
    sentTo: schoolDay.optional(),
    signedFrom: schoolDay.optional(),
    signedTo: schoolDay.optional(),
  })
  .superRefine((query, ctx) => {
    for (const [from, to] of [
      ['sentFrom', 'sentTo'],
      ['signedFrom', 'signedTo'],
    ] as const) {
      const [start, end] = [query[from], query[to]];
      if (start && end && start > end)
        ctx.addIssue({ code: 'custom', path: [from], message: `${from} is after ${to}` });
    }
    if (query.studentId && query.leadId) {
      ctx.addIssue({ code: 'custom', path: ['leadId'], message: 'An agreement goes to a student or a lead: give one' });
    }
  });

endpoint({
  name: 'agreements-list',
  methods: ['GET'],
  route: 'agreements',
  access: AGREEMENT_READERS,
  phi: true,
  query: AgreementListQuery,
  handler: async function listAgreements({ sql, query, caller, request }) {
    const rows = await agreementPageQuery(sql, query, caller, query.cursor, query.limit);
    const page = pageOf(rows, query.limit, (read) => read.map(agreementListItem));
    return json(page, 200, nextLink(request.url, page.next));
  },
});

endpoint({
  name: 'agreements-get',
  methods: ['GET'],
  route: 'agreements/{id}',
  access: ['student', ...AGREEMENT_READERS],
  phi: true,
  params: IdParams,
  handler: async function readAgreement({ sql, params, caller }) {
    const row = await findAgreement(sql, params.id, caller);
    if (!row) throw notFound('No such agreement');
    return json(agreementView(row, { withForm: true }));
  },
});

endpoint({
  name: 'agreements-events',
  methods: ['GET'],
  route: 'agreements/{id}/events',
  access: AGREEMENT_READERS,
  phi: true,
  params: IdParams,
  handler: async function readAgreementTrail({ sql, params, caller }) {
    const row = await findAgreement(sql, params.id, caller);
    if (!row) throw notFound('No such agreement');
    return json({ items: (await eventsOf(sql, row.id)).map(eventView) });
  },
});

endpoint({
  name: 'agreements-resend',
  methods: ['POST'],
  route: 'agreements/{id}/resend',
  access: AGREEMENT_READERS,
  phi: true,
  params: IdParams,
  handler: async function resendAgreement({ sql, params, caller, clientIp, request }) {
    const row = await findAgreement(sql, params.id, caller, true);
    if (!row) throw notFound('No such agreement');
    requireStatus(row, RESENDABLE, 'only an unsigned agreement is sent again');
    // A new link replaces the previous one: only the latest email works.
    await sendSigningLink(sql, row.id, await signerOf(sql, row));
    await recordEvent(sql, row.id, 'resent', {
      userId: caller.userId,
      clientIp,
      userAgent: request.headers.get('user-agent'),
    });
    return json(agreementView((await findAgreement(sql, row.id, caller))!));
  },
});

endpoint({
  name: 'agreements-void',
  methods: ['POST'],
  route: 'agreements/{id}/void',
  access: AGREEMENT_STAFF,
  phi: true,
  params: IdParams,
  body: z.strictObject({ reason: multiLine(1000) }),
  handler: async function voidOneAgreement({ sql, params, body, caller, clientIp, request }) {
    const row = await findAgreement(sql, params.id, caller, true);
    if (!row) throw notFound('No such agreement');
    requireStatus(row, VOIDABLE, 'a completed or closed agreement cannot be voided');
    await voidAgreement(sql, row.id, caller.userId, body.reason);
    await recordEvent(sql, row.id, 'voided', {
      userId: caller.userId,
      clientIp,
      userAgent: request.headers.get('user-agent'),
    });
    return json(agreementView((await findAgreement(sql, row.id, caller))!));
  },
});

endpoint({
  name: 'agreements-countersign',
  methods: ['POST'],
  route: 'agreements/{id}/countersign',
  access: AGREEMENT_STAFF,
  phi: true,
  params: IdParams,
  body: z.strictObject({ typedName: PersonName, signaturePng: SignaturePng }),
  maxBodyBytes: 512 * 1024,
  handler: async function counterSign({ sql, params, body, caller, clientIp, request }) {
    const row = await findAgreement(sql, params.id, caller, true);
    if (!row) throw notFound('No such agreement');
    requireStatus(row, ['student_signed'], 'the school counter-signs only after the student signed');
    const origin = { userId: caller.userId, clientIp, userAgent: request.headers.get('user-agent') };
    const signature = {
      kind: 'school_official',
      signerUserId: caller.userId,
      typedName: body.typedName,
      png: body.signaturePng,
    } as const;
    await insertSignature(sql, row.id, signature, origin);
    await markCounterSigned(sql, row.id);
    await recordEvent(sql, row.id, 'counter_signed', origin);
    await sealAgreement(sql, row, origin);
    return json(agreementView((await findAgreement(sql, row.id, caller))!));
  },
});

endpoint({
  name: 'agreements-pdf',
  methods: ['GET'],
  route: 'agreements/{id}/pdf',
  access: ['student', ...AGREEMENT_READERS],
  phi: true,
  params: IdParams,
  handler: async function downloadAgreement({ sql, params, caller, clientIp, request }) {
    const row = await findAgreement(sql, params.id, caller);
    if (!row) throw notFound('No such agreement');
    if (!row.sealed_file_id) throw notFound('This agreement has no sealed PDF yet: it is not completed');
    const opened = await openFile(sql, row.sealed_file_id);
    if (!opened) throw notFound('No such agreement');
    await recordEvent(sql, row.id, 'downloaded', {
      userId: caller.userId,
      clientIp,
      userAgent: request.headers.get('user-agent'),
    });
    return streamed(opened.content, 'application/pdf', {
      'Content-Disposition': `attachment; filename="agreement-${row.id}.pdf"`,
      'Content-Length': String(opened.file.byteSize),
      'Repr-Digest': `sha-256=:${opened.file.sha256.toString('base64')}:`,
    });
  },
});
