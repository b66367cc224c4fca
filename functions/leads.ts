// Leads (applicants an agreement went to before they had an account), for admissions and the
// registrar: the list, newest first (`GET leads?status=`), the same with an exact address in a body
// (`POST leads/search`, keeping emails out of URLs and logs), one lead, and its conversion into a
// student once one of its agreements is completed. Rules and SQL: lib/leads.ts.
import { z } from 'zod';
import { type ChangeInput, endpoint, type ReadInput } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { json } from '../lib/http';
import {
  convertLead,
  findLead,
  LEAD_CONVERTERS,
  LEAD_ORDER,
  LEAD_READERS,
  LEAD_STATUSES,
  leadPageQuery,
  toLeadViews,
} from '../lib/leads';
import { deliverNowInDevelopment } from '../lib/outbox';
import { limitSchema, nextLink, pageOf } from '../lib/pagination';
import { EmailLookup } from '../lib/users';

const IdParams = z.object({ id: z.uuid() });

const listShape = {
  limit: limitSchema,
  cursor: LEAD_ORDER.cursor,
  status: z.enum(LEAD_STATUSES).optional(),
};
// Strict: a misspelt filter must not silently widen a list of personal data.
const LeadListQuery = z.strictObject(listShape);
const LeadSearchBody = z.strictObject({ ...listShape, email: EmailLookup.optional() });

async function listLeads({ sql, query, request }: ReadInput<unknown, z.infer<typeof LeadListQuery>>) {
  const page = pageOf(await leadPageQuery(sql, query, query.cursor, query.limit), query.limit, toLeadViews);
  return json(page, 200, nextLink(request.url, page.next));
}

endpoint({
  name: 'leads-list',
  methods: ['GET'],
  route: 'leads',
  access: LEAD_READERS,
  phi: true,
  query: LeadListQuery,
  handler: listLeads,
});

async function searchLeads({ sql, body }: ChangeInput<unknown, unknown, z.infer<typeof LeadSearchBody>>) {
  return json(pageOf(await leadPageQuery(sql, body, body.cursor, body.limit), body.limit, toLeadViews));
}

endpoint({
  name: 'leads-search',
  methods: ['POST'],
  route: 'leads/search',
  access: LEAD_READERS,
  phi: true,
  body: LeadSearchBody,
  handler: searchLeads,
});

async function readLead({ sql, params }: ReadInput<z.infer<typeof IdParams>>) {
  const row = await findLead(sql, params.id);
  if (!row) throw notFound('No such lead');
  return json(toLeadViews([row])[0]);
}

endpoint({
  name: 'leads-get',
  methods: ['GET'],
  route: 'leads/{id}',
  access: LEAD_READERS,
  phi: true,
  params: IdParams,
  handler: readLead,
});

const ConversionBody = z.strictObject({
  /** The student account the applicant already has; without it, found by the lead's address or created. */
  studentId: z.uuid().optional(),
});

async function convertOneLead({
  sql,
  params,
  body,
  caller,
  clientIp,
  request,
  audit,
  afterCommit,
}: ChangeInput<z.infer<typeof IdParams>, unknown, z.infer<typeof ConversionBody>>) {
  const origin = { userId: caller.userId, clientIp, userAgent: request.headers.get('user-agent') };
  const conversion = await convertLead(sql, params.id, body, origin);
  if (!conversion) throw notFound('No such lead');
  audit.resourceIds.leadId = params.id;
  audit.resourceIds.studentId = conversion.studentId;
  if (conversion.accountCreated) afterCommit(deliverNowInDevelopment);
  const row = await findLead(sql, params.id);
  return json({ ...toLeadViews([row!])[0], accountCreated: conversion.accountCreated });
}

endpoint({
  name: 'leads-convert',
  methods: ['POST'],
  route: 'leads/{id}/conversion',
  access: LEAD_CONVERTERS,
  phi: true,
  params: IdParams,
  body: ConversionBody,
  handler: convertOneLead,
});
