import { z } from 'zod';
import { customerIdSchema } from '../../domain/customer.js';
import { EVENT_TYPES, VENDOR_EVENTS, storedEventSchema } from '../../domain/events.js';
import { ID_PATTERN, idLowerBound } from '../../domain/ids.js';
import { keys } from '../../store/repositories.js';
import { decodeCursor, encodeCursor, pageQuery, pageSchema } from '../paging.js';
import { notFound } from '../problem.js';
import { optional } from '../../optional.js';
import { problems } from '../responses.js';
import { defineRoute, type ApiResult } from '../route.js';
import type { Principal } from '../auth/principal.js';
import type { ApiServices } from '../services.js';

const route = defineRoute<ApiServices>();
const eventView = storedEventSchema.meta({ id: 'Event' });
const eventParams = z.object({ customerId: customerIdSchema, eventId: z.string().regex(ID_PATTERN.evt) });
const eventQuery = z.object({
  ...pageQuery,
  since: z.iso.datetime({ offset: true }).optional().meta({ description: 'Only events that occurred at or after this time.' }),
  type: z.enum(EVENT_TYPES).optional(),
  connectionId: z.string().regex(ID_PATTERN.con).optional(),
});

async function listEvents(services: ApiServices, partition: string, query: z.output<typeof eventQuery>): Promise<ApiResult> {
  const page = await services.repositories.events.page(partition, {
    pageSize: query.limit,
    ...optional('range', query.since === undefined ? undefined : { from: idLowerBound('evt', new Date(query.since)) }),
    ...optional('continuationToken', decodeCursor('events', query.cursor)),
  });
  const items = page.items
    .map((i) => i.value)
    .filter((e) => (query.type === undefined || e.type === query.type) && (query.connectionId === undefined || e.connectionId === query.connectionId));
  return { status: 200, body: { items, ...optional('nextCursor', encodeCursor('events', page.continuationToken)) } };
}

/** Events of the vendor's app registrations concern every customer: only credentials for every customer see them (others get 404, as for another customer's data). */
function requireAllCustomers(principal: Principal | undefined): void {
  if (principal?.customerScope !== '*') throw notFound('The app events');
}

export const eventRoutes = [
  route({
    name: 'events-list',
    method: 'GET',
    path: 'v1/customers/{customerId}/events',
    tag: 'Events',
    summary: 'List a customer\'s events, oldest first, with their webhook deliveries',
    description: 'Filters apply within each page, so a page can hold fewer than `limit` items while `nextCursor` is present.',
    authenticated: true,
    params: z.object({ customerId: customerIdSchema }),
    query: eventQuery,
    responses: [{ status: 200, description: 'A page of events.', schema: pageSchema(eventView, 'EventPage') }, ...problems(400, 401, 404)],
    async handle({ params, query, services }) {
      if (!(await services.repositories.customers.get(keys.customer(params.customerId)))) throw notFound('The customer');
      return listEvents(services, params.customerId, query);
    },
  }),
  route({
    name: 'events-get',
    method: 'GET',
    path: 'v1/customers/{customerId}/events/{eventId}',
    tag: 'Events',
    summary: 'Get an event and its delivery attempts',
    authenticated: true,
    params: eventParams,
    responses: [{ status: 200, description: 'The event.', schema: eventView }, ...problems(401, 404)],
    async handle({ params, services }) {
      const found = await services.repositories.events.get(keys.event(params.customerId, params.eventId));
      if (!found) throw notFound('The event');
      return { status: 200, body: found.value };
    },
  }),
  route({
    name: 'events-replay',
    method: 'POST',
    path: 'v1/customers/{customerId}/events/{eventId}/replay',
    tag: 'Events',
    summary: 'Deliver an event to its webhook endpoints again',
    description: 'The webhook-id stays the event id, so a receiver that already processed the event can drop the copy.',
    authenticated: true,
    params: eventParams,
    responses: [
      { status: 202, description: 'Queued.', schema: z.object({ deliveries: z.int() }).meta({ id: 'ReplayAccepted' }) },
      ...problems(401, 404),
    ],
    async handle({ params, services }) {
      const deliveries = await services.replayEvent(params.customerId, params.eventId);
      if (deliveries === undefined) throw notFound('The event');
      return { status: 202, body: { deliveries } };
    },
  }),
  route({
    name: 'events-replay-failed',
    method: 'POST',
    path: 'v1/customers/{customerId}/events/replay-failed',
    tag: 'Events',
    summary: 'Deliver again every event since a time whose delivery failed or is stuck',
    description: 'Stuck: pending or retrying more than an hour past due (e.g. after a long storage outage). The webhook-id stays the event id.',
    authenticated: true,
    params: z.object({ customerId: customerIdSchema }),
    body: z.object({ since: z.iso.datetime({ offset: true }) }).strict(),
    responses: [
      {
        status: 202,
        description: 'Queued.',
        schema: z.object({ events: z.int(), deliveries: z.int() }).meta({ id: 'ReplayFailedAccepted' }),
      },
      ...problems(400, 401, 404),
    ],
    async handle({ params, body, services }) {
      if (!(await services.repositories.customers.get(keys.customer(params.customerId)))) throw notFound('The customer');
      const result = await services.replayFailedEvents(params.customerId, new Date(body.since));
      return { status: 202, body: result };
    },
  }),
  route({
    name: 'app-events-list',
    method: 'GET',
    path: 'v1/app-events',
    tag: 'Events',
    summary: 'List the events of your app registrations (app.misconfigured, app.recovered, app.credential_expiring), oldest first',
    description: 'These concern every customer, so only credentials for every customer ("*") see them; webhooks added with --all receive them.',
    authenticated: true,
    query: eventQuery.omit({ connectionId: true }),
    responses: [{ status: 200, description: 'A page of app events.', schema: pageSchema(eventView, 'AppEventPage') }, ...problems(400, 401, 404)],
    async handle({ query, principal, services }) {
      requireAllCustomers(principal);
      return listEvents(services, VENDOR_EVENTS, query);
    },
  }),
  route({
    name: 'app-events-replay',
    method: 'POST',
    path: 'v1/app-events/{eventId}/replay',
    tag: 'Events',
    summary: 'Deliver an app event to its webhook endpoints again',
    authenticated: true,
    params: z.object({ eventId: z.string().regex(ID_PATTERN.evt) }),
    responses: [{ status: 202, description: 'Queued.', schema: z.object({ deliveries: z.int() }) }, ...problems(401, 404)],
    async handle({ params, principal, services }) {
      requireAllCustomers(principal);
      const deliveries = await services.replayEvent(VENDOR_EVENTS, params.eventId);
      if (deliveries === undefined) throw notFound('The event');
      return { status: 202, body: { deliveries } };
    },
  }),
];
