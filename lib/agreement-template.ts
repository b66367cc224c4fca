// What an enrollment agreement says and asks: a template is a versioned JSON description of its
// sections (school, student information, programme, tuition and fees, attendance, refund and
// cancellation, complaints, GNPEC acknowledgements with initials). Sections hold paragraphs of the
// school's text and fields; a field is filled by the school when sending (`by: "school"`: programme,
// dates, tuition) or by the signer (`by: "signer"`). The form data is nested as the portal sends it:
// `{ "<section id>": { "<field id>": value } }`, and validated against the template field by field.
// Also the ESIGN disclosure the signer must accept first (versioned text).
import { z } from 'zod';
import { singleLine } from './text';

const Id = z.string().regex(/^[a-zA-Z][a-zA-Z0-9]{0,39}$/, 'letters and digits, starting with a letter');

const FieldSpec = z.strictObject({
  id: Id,
  label: singleLine(200),
  type: z.enum(['text', 'date', 'email', 'phone', 'digits', 'choice', 'initials', 'money', 'accept']),
  by: z.enum(['school', 'signer']),
  required: z.boolean().default(true),
  /** digits: exactly this many (SSN last four); text: at most this many characters. */
  length: z.number().int().min(1).max(500).optional(),
  options: z.array(singleLine(100)).min(1).max(50).optional(),
});

const SectionSpec = z.strictObject({
  id: Id,
  title: singleLine(200),
  paragraphs: z.array(z.string().min(1).max(5_000)).max(50).default([]),
  fields: z.array(FieldSpec).max(60).default([]),
});

/** The description of an agreement template (the body of `POST agreements/templates`). */
export const AgreementSchema = z
  .strictObject({
    title: singleLine(200),
    sections: z.array(SectionSpec).min(1).max(40),
  })
  .superRefine((schema, ctx) => {
    const ids = new Set<string>();
    schema.sections.forEach((section, i) => {
      if (ids.has(section.id)) ctx.addIssue({ code: 'custom', path: ['sections', i, 'id'], message: 'used twice' });
      ids.add(section.id);
      const fields = new Set<string>();
      section.fields.forEach((field, j) => {
        if (fields.has(field.id))
          ctx.addIssue({ code: 'custom', path: ['sections', i, 'fields', j, 'id'], message: 'used twice' });
        fields.add(field.id);
        if (field.type === 'choice' && !field.options)
          ctx.addIssue({
            code: 'custom',
            path: ['sections', i, 'fields', j, 'options'],
            message: 'a choice needs options',
          });
      });
    });
  });
export type AgreementSchema = z.infer<typeof AgreementSchema>;
export type FieldSpec = z.infer<typeof FieldSpec>;

/** Form data: section → field → value (strings, or `true` for an accepted checkbox). */
export type FormData = Record<string, Record<string, string | boolean>>;

function valueSchema(field: FieldSpec): z.ZodType<string | boolean> {
  switch (field.type) {
    case 'date':
      return z.iso.date();
    case 'email':
      return z.email().max(254);
    case 'phone':
      return z.string().regex(/^\+?[0-9 ().-]{7,20}$/, 'a phone number');
    case 'digits':
      return z
        .string()
        .regex(new RegExp(`^[0-9]{${field.length ?? 1},${field.length ?? 20}}$`), `${field.length ?? ''} digits`);
    case 'choice':
      return z.enum(field.options as [string, ...string[]]);
    case 'initials':
      return z.string().regex(/^\p{Lu}{2,4}$/u, '2 to 4 capital letters');
    case 'money':
      return z.string().regex(/^[0-9]{1,7}(\.[0-9]{2})?$/, 'an amount in dollars, e.g. 1250.00');
    case 'accept':
      return z.literal(true, 'must be accepted');
    default:
      return singleLine(field.length ?? 200);
  }
}

/**
 * The zod schema of the form data one party fills in: every section with fields of theirs is an object
 * of exactly those fields (unknown sections and fields are refused, so nothing unvalidated is stored).
 */
export function formSchemaFor(schema: AgreementSchema, by: FieldSpec['by']): z.ZodType<FormData> {
  const sections: Record<string, z.ZodType> = {};
  for (const section of schema.sections) {
    const mine = section.fields.filter((field) => field.by === by);
    if (mine.length === 0) continue;
    const shape = Object.fromEntries(
      mine.map((field) => [field.id, field.required ? valueSchema(field) : valueSchema(field).optional()]),
    );
    sections[section.id] = z.strictObject(shape);
  }
  return z.strictObject(sections) as unknown as z.ZodType<FormData>;
}

/**
 * The ESIGN Act (15 U.S.C. § 7001(c)) disclosure shown before consent. A new text gets a new version;
 * the agreement records which version its signer accepted.
 */
export const ESIGN_DISCLOSURE = {
  version: '2026-12-01',
  paragraphs: [
    'You may sign this enrollment agreement electronically. Your electronic signature has the same legal effect as a handwritten one.',
    'Scope: this consent covers this enrollment agreement and the notices and copies that belong to it.',
    'Paper copies: you have the right to receive this agreement on paper, free of charge. Ask the registrar (registrar@aada.edu) at any time, before or after signing.',
    'Withdrawing consent: you may withdraw your consent to sign electronically before you sign, by not signing and asking the school for a paper agreement. Withdrawing consent does not affect documents already signed.',
    'Hardware and software: a device with a current web browser (Chrome, Edge, Firefox or Safari), an internet connection, an email account, and a PDF reader to open and keep your signed copy.',
    'Updating your contact information: tell the registrar if your email address changes.',
  ],
} as const;

const section = (
  id: string,
  title: string,
  paragraphs: string[],
  fields: z.input<typeof FieldSpec>[] = [],
): z.input<typeof SectionSpec> => ({ id, title, paragraphs, fields });

/** The school's enrollment agreement, version 1: what the seed and a fresh deployment start from. */
export const ENROLLMENT_AGREEMENT_V1: z.input<typeof AgreementSchema> = {
  title: 'Enrollment Agreement',
  sections: [
    section('school', 'The school', [
      'Atlanta Academy of Dental Assisting, Atlanta, Georgia. Authorized by the Georgia Nonpublic Postsecondary Education Commission (GNPEC).',
    ]),
    section(
      'student',
      'Student information',
      [],
      [
        { id: 'firstName', label: 'First name', type: 'text', by: 'signer', length: 100 },
        { id: 'lastName', label: 'Last name', type: 'text', by: 'signer', length: 100 },
        { id: 'dateOfBirth', label: 'Date of birth', type: 'date', by: 'signer' },
        { id: 'ssnLast4', label: 'Last four digits of SSN', type: 'digits', by: 'signer', length: 4 },
        { id: 'address', label: 'Address', type: 'text', by: 'signer', length: 300 },
        { id: 'phone', label: 'Phone', type: 'phone', by: 'signer' },
        { id: 'email', label: 'Email', type: 'email', by: 'signer' },
      ],
    ),
    section(
      'program',
      'Programme',
      [],
      [
        { id: 'name', label: 'Programme', type: 'text', by: 'school' },
        { id: 'startDate', label: 'Start date', type: 'date', by: 'school' },
        { id: 'endDate', label: 'Expected end date', type: 'date', by: 'school' },
        { id: 'schedule', label: 'Schedule', type: 'text', by: 'school', required: false },
      ],
    ),
    section(
      'financial',
      'Tuition and fees',
      ['Tuition and fees are due as set out in the payment schedule agreed with the finance office.'],
      [
        { id: 'tuition', label: 'Tuition (USD)', type: 'money', by: 'school' },
        { id: 'registrationFee', label: 'Registration fee (USD)', type: 'money', by: 'school' },
        { id: 'deposit', label: 'Deposit (USD)', type: 'money', by: 'school', required: false },
      ],
    ),
    section('attendance', 'Attendance', [
      'Students must attend at least 90% of scheduled clinical hours. Absences are recorded daily; three consecutive absences without notice may lead to dismissal.',
    ]),
    section('refund', 'Cancellation and refund policy', [
      'You may cancel this agreement within three business days of signing it and receive a full refund of all money paid.',
      'After classes begin, refunds follow the GNPEC minimum refund standards, computed on the portion of the programme completed.',
    ]),
    section('complaints', 'Complaints', [
      'Complaints go first to the school director. A complaint the school has not resolved may be filed with the Georgia Nonpublic Postsecondary Education Commission (gnpec.georgia.gov).',
    ]),
    section(
      'acknowledgements',
      'Acknowledgements',
      ['Initial each statement to confirm you have read and understood it.'],
      [
        { id: 'catalog', label: 'I received the school catalog before signing', type: 'initials', by: 'signer' },
        { id: 'refundPolicy', label: 'I read the cancellation and refund policy', type: 'initials', by: 'signer' },
        { id: 'gnpec', label: 'I was told how to file a complaint with GNPEC', type: 'initials', by: 'signer' },
        { id: 'agree', label: 'I agree to the terms of this agreement', type: 'accept', by: 'signer' },
      ],
    ),
  ],
};
