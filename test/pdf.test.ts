// The document renderer (lib/pdf.ts) on its own, read back with a PDF text extractor: metadata, pages
// that break where the content does (a table repeats its header), a footer and "Page n of m" on every
// page, cells cut to their column, paragraphs wrapped, and text outside WinAnsi drawn or marked.
import { extractText, getDocumentProxy, getMeta } from 'unpdf';
import { describe, expect, test } from 'vitest';
import { type DocumentSpec, renderPdf } from '../lib/pdf';

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
