// The document renderer (lib/pdf.ts) on its own, read back with a PDF text extractor: metadata, pages
// that break where the content does (a table repeats its header), a footer and "Page n of m" on every
// page, cells cut to their column, paragraphs wrapped, and text outside WinAnsi drawn or marked; and a
// sealed file reads back as sealed, whatever its signature bytes.

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { extractText, getDocumentProxy, getMeta } from 'unpdf';
import { describe, expect, test } from 'vitest';
import { resetConfigForTests } from '../lib/config';
import { type DocumentSpec, renderPdf, verifySeal } from '../lib/pdf';
import { resetSealIdentityForTests } from '../lib/pdf-seal';

async function pagesOf(bytes: Uint8Array): Promise<{ pages: string[]; title: unknown; author: unknown }> {
  const document = await getDocumentProxy(new Uint8Array(bytes));
  const { info } = await getMeta(document);
  const { text } = await extractText(document, { mergePages: false });
  return { pages: text, title: info.Title, author: info.Author };
}

const LONG_TITLE = 'Infection control and the OSHA bloodborne pathogens standard in the dental office, in full detail';

function spec(rows: number, extra: Partial<DocumentSpec> = {}): DocumentSpec {
  return {
    title: 'Statement 42',
    author: 'A school',
    createdAt: new Date('2026-12-01T12:00:00Z'),
    footer: 'Statement 42 · issued 1 December 2026',
    blocks: [
      { kind: 'heading', text: 'A school', level: 1 },
      { kind: 'heading', text: 'Statement of account', level: 2 },
      {
        kind: 'fields',
        rows: [
          ['Student', 'Ana Example'],
          ['Period', '1 November 2026 to 30 November 2026'],
        ],
      },
      {
        kind: 'table',
        columns: [
          { title: 'Line', width: 1, align: 'right' },
          { title: 'Description', width: 4 },
          { title: 'Amount', width: 1, align: 'right' },
        ],
        rows: Array.from({ length: rows }, (_, i) => [String(i + 1), i === 0 ? LONG_TITLE : `Entry ${i + 1}`, '10.00']),
      },
      { kind: 'text', text: `Closing words. ${'A long paragraph wraps to the width of the page. '.repeat(6)}End.` },
      ...(extra.blocks ?? []),
    ],
    ...(extra.missingGlyphsNote ? { missingGlyphsNote: extra.missingGlyphsNote } : {}),
  };
}

describe('lib/pdf.ts', () => {
  test('one page: metadata, headings, fields, a table, a paragraph and the footer', async () => {
    const { pages, title, author } = await pagesOf(await renderPdf(spec(3)));
    expect(title).toBe('Statement 42');
    expect(author).toBe('A school');
    expect(pages).toHaveLength(1);
    const [page] = pages as [string];
    expect(page).toContain('Statement of account');
    expect(page).toContain('Ana Example');
    expect(page).toContain('Entry 3');
    expect(page).toContain('Closing words.');
    expect(page).toContain('End.');
    expect(page).toContain('Statement 42 · issued 1 December 2026');
    expect(page).toContain('Page 1 of 1');
    // A cell longer than its column is cut with an ellipsis; a paragraph is wrapped, not cut.
    expect(page).toContain('Infection control');
    expect(page).not.toContain('in full detail');
    expect(page).toContain('…');
  });

  test('a long table breaks across pages, repeating its header; every page has its number', async () => {
    const { pages } = await pagesOf(await renderPdf(spec(120)));
    expect(pages.length).toBeGreaterThanOrEqual(3);
    pages.forEach((page, i) => {
      expect(page).toContain(`Page ${i + 1} of ${pages.length}`);
      expect(page).toContain('Statement 42 · issued 1 December 2026');
      expect(page).toContain('Description');
    });
    const all = pages.join('\n');
    for (const row of [2, 60, 120]) expect(all).toContain(`Entry ${row}`);
    expect(pages.at(-1)).toContain('End.');
  });

  test('a page break starts a new page', async () => {
    const document = spec(1, { blocks: [{ kind: 'page-break' }, { kind: 'text', text: 'Terms on their own page' }] });
    const { pages } = await pagesOf(await renderPdf(document));
    expect(pages).toHaveLength(2);
    expect(pages[1]).toContain('Terms on their own page');
    expect(pages[0]).not.toContain('Terms on their own page');
  });

  test('text outside WinAnsi is drawn; a character no font has is "?" and the note says so', async () => {
    const note = 'Characters shown as "?" could not be printed.';
    const plain = spec(1, { blocks: [{ kind: 'text', text: 'Nguyễn Thị Ánh' }], missingGlyphsNote: note });
    const plainText = (await pagesOf(await renderPdf(plain))).pages.join('\n');
    expect(plainText).toContain('Nguyễn Thị Ánh');
    expect(plainText).not.toContain(note);
    const cjk = spec(1, { blocks: [{ kind: 'text', text: '王小明 Wang' }], missingGlyphsNote: note });
    const cjkText = (await pagesOf(await renderPdf(cjk))).pages.join('\n');
    expect(cjkText).toContain('??? Wang');
    expect(cjkText).toContain(note);
  });
});

describe('the seal', () => {
  // A fixed certificate (test/fixtures/seal-test-certificate.p12: self-signed, for this test only) and a
  // fixed document give fixed signature bytes; sealed at this time, the CMS signature's last byte is 0x00.
  const SIGNED_AT = new Date('2026-12-01T12:03:31.000Z');
  const sealedSpec: DocumentSpec = {
    title: 'Sealed',
    author: 'A school',
    createdAt: SIGNED_AT,
    footer: 'f',
    blocks: [{ kind: 'text', text: 'Sealed text' }],
    seal: { reason: 'test', at: SIGNED_AT },
  };

  test('a seal whose signature ends in a zero byte is read and verifies (one seal in 256 was "unreadable")', async () => {
    // The configuration needs a database address; this test never connects.
    process.env.DATABASE_URL ??= 'postgres://unused:unused@127.0.0.1:9/unused';
    process.env.PDF_SEAL_CERTIFICATE = readFileSync(
      path.join(__dirname, 'fixtures', 'seal-test-certificate.p12'),
    ).toString('base64');
    resetConfigForTests();
    resetSealIdentityForTests();
    const pdf = Buffer.from(await renderPdf(sealedSpec));
    expect(Buffer.from(await renderPdf(sealedSpec)).equals(pdf)).toBe(true);
    const hex = /\/Contents <([0-9a-fA-F]+)>/.exec(pdf.toString('latin1'))?.[1] ?? '';
    const der = Buffer.from(hex, 'hex');
    // The precondition: the signature (a DER SEQUENCE with a two-byte length) ends in a zero byte.
    expect(der.subarray(0, 2).toString('hex')).toBe('3082');
    expect(der[4 + der.readUInt16BE(2) - 1]).toBe(0);
    expect(verifySeal(pdf)).toMatchObject({ sealed: true, ours: true, intact: true, signedAt: SIGNED_AT });
  });
});
