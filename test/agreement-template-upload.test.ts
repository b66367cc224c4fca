// A staff-uploaded PDF as an agreement template, over HTTP on PostgreSQL and Azurite: the upload is
// rewritten through lib/pdf.ts before it is stored, so the stored file (read back from the files
// store) holds its pages and none of the JavaScript, OpenAction, page actions, launch and link
// annotations, form fields or embedded files the upload had. Refused field by field: not a PDF, not
// base64, unparsable, over 10 MB; admin only; a version twice is a 409.

import { PDFArray, PDFDocument, PDFHexString, PDFName, PDFString } from 'pdf-lib';
import { beforeAll, describe, expect, test } from 'vitest';
import { readFile } from '../lib/files';
import { useTestApp } from './helpers/app';
import { send } from './helpers/http';
import { createRoleAccounts, type RoleAccounts } from './helpers/roles';

const app = useTestApp();
let roles: RoleAccounts;

const upload = (pdf: Buffer | string, version: string, as = roles.admin) =>
  send('POST', '/agreements/templates/uploads', {
    as,
    body: { name: 'Uploaded Agreement', version, pdf: typeof pdf === 'string' ? pdf : pdf.toString('base64') },
  });
const problemFields = async (response: Response) =>
  ((await response.json()) as { errors?: { field: string }[] }).errors?.map((e) => e.field) ?? [];
let versions = 0;
const nextVersion = () => `u${++versions}`;

/** A two-page PDF with everything a template must not carry, built with pdf-lib's own objects. */
async function hostilePdf(): Promise<Buffer> {
  const doc = await PDFDocument.create();
  const first = doc.addPage([612, 792]);
  first.drawText('Enrollment agreement, page one', { x: 72, y: 700 });
  doc.addPage([612, 792]).drawText('Page two', { x: 72, y: 700 });
  const context = doc.context;
  const script = context.obj({ Type: 'Action', S: 'JavaScript', JS: PDFString.of('app.alert("pwned")') });
  doc.catalog.set(PDFName.of('OpenAction'), context.register(script));
  doc.catalog.set(PDFName.of('AA'), context.obj({ WC: context.register(script) }));
  doc.catalog.set(
    PDFName.of('Names'),
    context.obj({ JavaScript: context.obj({ Names: [PDFHexString.fromText('boot'), context.register(script)] }) }),
  );
  await doc.attach(Buffer.from('MZ pretend executable'), 'payload.exe', { mimeType: 'application/octet-stream' });
  doc.getForm().createTextField('ssn').addToPage(first, { x: 72, y: 600, width: 200, height: 20 });
  const launch = context.obj({ Type: 'Action', S: 'Launch', F: PDFString.of('cmd.exe') });
  const link = context.obj({ Type: 'Annot', Subtype: 'Link', Rect: [72, 500, 272, 520], A: context.register(launch) });
  const annots = first.node.lookup(PDFName.of('Annots'), PDFArray);
  annots.push(context.register(link));
  first.node.set(PDFName.of('AA'), context.obj({ O: context.register(script) }));
  return Buffer.from(await doc.save({ useObjectStreams: false }));
}

const ACTIVE_MARKERS = [
  '/JavaScript',
  '/JS',
  '/OpenAction',
  '/AA',
  '/Launch',
  '/EmbeddedFile',
  '/AcroForm',
  '/Annots',
  'app.alert',
  'cmd.exe',
  'payload.exe',
];

beforeAll(async () => {
  roles = await createRoleAccounts(app.db.sql);
});

describe('uploading a PDF template', () => {
  test('the stored file is the pages only: scripts, actions, forms, links and attachments removed', async () => {
    const hostile = await hostilePdf();
    const text = hostile.toString('latin1');
    // The upload really carries them (else the test could not fail).
    for (const marker of ['/JavaScript', '/OpenAction', '/Launch', '/EmbeddedFile', '/AcroForm', 'app.alert']) {
      expect(text, marker).toContain(marker);
    }
    const response = await upload(hostile, nextVersion());
    expect(response.status).toBe(201);
    const body = (await response.json()) as {
      id: string;
      kind: string;
      active: boolean;
      pages: number;
      removed: string[];
      file: { sha256: string; byteSize: number };
    };
    expect(body).toMatchObject({ kind: 'pdf', active: false, pages: 2 });
    expect(body.removed).toEqual(
      expect.arrayContaining(['OpenAction', 'AA', 'AcroForm', 'Names', 'JavaScript', 'EmbeddedFiles', 'Annots']),
    );

    const [row] = await app.db.sql<{ storage_ref: string; content: Buffer | null; schema: unknown }[]>`
      select storage_ref, content, schema from document_templates where id = ${body.id}`;
    expect(row?.content).toBeNull();
    expect(row?.schema).toBeNull();
    const stored = await readFile(app.db.sql, row?.storage_ref as string);
    if (!stored) throw new Error('the template file is not in the files store');
    expect(stored.file.sha256.toString('hex')).toBe(body.file.sha256);
    const cleaned = stored.content.toString('latin1');
    expect(cleaned.startsWith('%PDF-')).toBe(true);
    for (const marker of ACTIVE_MARKERS) expect(cleaned, marker).not.toContain(marker);
    const reread = await PDFDocument.load(stored.content);
    expect(reread.getPageCount()).toBe(2);
  });

  test('a plain PDF goes through with nothing removed; the same version twice is a 409', async () => {
    const doc = await PDFDocument.create();
    doc.addPage().drawText('Plain template');
    const plain = Buffer.from(await doc.save());
    const version = nextVersion();
    const first = await upload(plain, version);
    expect(first.status).toBe(201);
    expect(((await first.json()) as { removed: string[] }).removed).toEqual([]);
    const again = await upload(plain, version);
    expect(again.status).toBe(409);
    expect(await problemFields(again)).toEqual(['body.version']);
  });

  test('refused with a 400 naming the field: not a PDF, not base64, unparsable', async () => {
    for (const [label, pdf] of [
      ['a PNG', Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex')],
      ['text', Buffer.from('hello, not a pdf at all')],
      ['a truncated PDF', Buffer.from('%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R')],
    ] as const) {
      const response = await upload(pdf, nextVersion());
      expect(response.status, label).toBe(400);
      expect(await problemFields(response), label).toEqual(['body.pdf']);
    }
    const notBase64 = await upload('%%%not base64%%%', nextVersion());
    expect(notBase64.status).toBe(400);
    expect(await problemFields(notBase64)).toEqual(['body.pdf']);
    const wrongType = await send('POST', '/agreements/templates/uploads', {
      as: roles.admin,
      body: { name: 'Uploaded Agreement', version: nextVersion(), pdf: 42 },
    });
    expect(wrongType.status).toBe(400);
  });

  test('over 10 MB is a 413; only an administrator uploads', async () => {
    const big = Buffer.alloc(10 * 1024 * 1024 + 1, 0x20);
    big.write('%PDF-1.7\n');
    expect((await upload(big, nextVersion())).status).toBe(413);
    const small = Buffer.from('%PDF-1.7\n');
    for (const who of [roles.registrar, roles.staff, roles.admissions_manager]) {
      expect((await upload(small, nextVersion(), who)).status).toBe(403);
    }
    const [count] = await app.db.sql<{ n: number }[]>`
      select count(*)::int as n from document_templates where name = 'Uploaded Agreement'`;
    expect(count?.n).toBe(2);
  });
});
