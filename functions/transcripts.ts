// Transcript routes: the registrar or an admin generates one for a student and programme; the student
// and the issuers read it as JSON and as the PDF. The record, its rules, who may see it and its
// document are lib/transcripts.ts.
import { z } from 'zod';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { bytes, created, json } from '../lib/http';
import {
  generateTranscript,
  ISSUERS,
  toNewTranscriptView,
  toTranscriptView,
  transcriptPdfVisibleTo,
  transcriptVisibleTo,
} from '../lib/transcripts';

const NewTranscript = z.strictObject({ studentId: z.uuid(), programId: z.uuid() });
const TranscriptParams = z.object({ id: z.uuid() });

endpoint({
  name: 'transcripts-create',
  methods: ['POST'],
  route: 'transcripts',
  access: ISSUERS,
  phi: true,
  body: NewTranscript,
  handler: async function createTranscript({ sql, body, caller, audit }) {
    const generated = await generateTranscript(sql, body, caller);
    if (!generated) throw notFound('This student has no enrollment in this programme');
    audit.resourceIds.transcriptId = generated.transcript.id;
    return created(toNewTranscriptView(generated), `/api/transcripts/${generated.transcript.id}`);
  },
});

endpoint({
  name: 'transcripts-get',
  methods: ['GET'],
  route: 'transcripts/{id}',
  access: ['student', ...ISSUERS],
  phi: true,
  params: TranscriptParams,
  handler: async function readTranscript({ sql, params, caller }) {
    const row = await transcriptVisibleTo(sql, params.id, caller);
    if (!row) throw notFound('No such transcript');
    return json(toTranscriptView(row));
  },
});

endpoint({
  name: 'transcripts-pdf',
  methods: ['GET'],
  route: 'transcripts/{id}/pdf',
  access: ['student', ...ISSUERS],
  phi: true,
  params: TranscriptParams,
  handler: async function downloadTranscriptPdf({ sql, params, caller }) {
    const pdf = await transcriptPdfVisibleTo(sql, params.id, caller);
    if (!pdf) throw notFound('No such transcript');
    return bytes(new Uint8Array(pdf.content), pdf.contentType, {
      'Content-Disposition': `attachment; filename="transcript-${params.id}.pdf"`,
      // RFC 9530: lets the client check the bytes against the digest the API reported at creation.
      'Repr-Digest': `sha-256=:${pdf.sha256.toString('base64')}:`,
    });
  },
});
