// The public programme catalogue: what the school offers, with each programme's modules in order.
// Public and cacheable (`public, max-age=300` with an ETag); nothing here is personal.
import { z } from 'zod';
import { endpoint } from '../lib/endpoint';
import { notFound } from '../lib/errors';
import { json } from '../lib/http';
import { limitSchema, nextLink, pageOf, pageSchema } from '../lib/pagination';
import {
  CatalogueProgramView,
  cataloguePageQuery,
  catalogueVersion,
  findCatalogueProgram,
  PROGRAM_ORDER,
  ProgramView,
  toCatalogueProgramView,
  toProgramView,
} from '../lib/programs';

const CatalogueQuery = z.object({
  limit: limitSchema,
  cursor: PROGRAM_ORDER.cursor,
});

endpoint({
  name: 'catalogue-programs-list',
  methods: ['GET'],
  route: 'programs',
  access: 'public',
  cache: 'public',
  version: catalogueVersion,
  query: CatalogueQuery,
  responses: { 200: pageSchema(ProgramView) },
  handler: async function catalogueProgramsList({ sql, query, request }) {
    const rows = await cataloguePageQuery(sql, query.cursor, query.limit);
    const page = pageOf(rows, query.limit, (read) => read.map(toProgramView));
    return json(page, 200, nextLink(request.url, page.next));
  },
});

const ProgramParams = z.object({ id: z.uuid() });

endpoint({
  name: 'catalogue-programs-get',
  methods: ['GET'],
  route: 'programs/{id}',
  access: 'public',
  cache: 'public',
  version: catalogueVersion,
  params: ProgramParams,
  responses: { 200: CatalogueProgramView },
  handler: async function catalogueProgramsGet({ sql, params }) {
    const row = await findCatalogueProgram(sql, params.id);
    if (!row) throw notFound('No such programme in the catalogue');
    return json(toCatalogueProgramView(row));
  },
});
