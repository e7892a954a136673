import { z } from 'zod';
import type { ApiRoute } from './route.js';

/**
 * The OpenAPI 3.1 document, made from the same route declarations and zod schemas that validate
 * requests, so it cannot drift from what the API does. Schemas with an id become named
 * components; everything else is inlined.
 */

type JsonSchema = Record<string, unknown>;

export interface OpenApiDocument {
  openapi: '3.1.0';
  info: { title: string; version: string; description: string };
  paths: Record<string, Record<string, unknown>>;
  webhooks: Record<string, unknown>;
  components: { schemas: Record<string, JsonSchema>; securitySchemes: Record<string, unknown> };
}

const DESCRIPTION = [
  'The vendor API of m365-connector: customers, their Microsoft 365 connections and mailboxes, and the events the connector emits.',
  '',
  'Authenticate with `Authorization: Bearer <credential>`, where the credential is an API key (`m365c_…`, made with',
  '`npm run connector -- keys create`) or a short-lived JWT signed by an issuer registered with `npm run connector -- issuers add`.',
  'Errors are RFC 9457 problem details (`application/problem+json`).',
].join('\n');

/** An event the connector POSTs to the vendor's webhook endpoints. */
export interface WebhookSpec {
  name: string;
  summary: string;
  schema: z.ZodType;
}

const HEADER_DESCRIPTIONS: Record<string, string> = {
  'x-request-id': 'Identifies the request in the connector\'s logs; problems repeat it in `instance`.',
};

export function buildOpenApiDocument<S>(routes: readonly ApiRoute<S>[], webhooks: readonly WebhookSpec[], version: string): OpenApiDocument {
  const components: Record<string, JsonSchema> = {};
  const convert = (schema: z.ZodType, io: 'input' | 'output'): JsonSchema => {
    const json = z.toJSONSchema(schema, { io, unrepresentable: 'any' }) as JsonSchema;
    const defs = (json.$defs ?? {}) as Record<string, JsonSchema>;
    for (const [id, def] of Object.entries(defs)) components[id] = rewriteRefs(def) as JsonSchema;
    const { $schema: _schema, $defs: _defs, ...root } = json;
    return rewriteRefs(root) as JsonSchema;
  };

  const paths: OpenApiDocument['paths'] = {};
  for (const route of routes) {
    const path = `/api/${route.path.replace(/\{([A-Za-z0-9_]+)(?::[^}]*)?\}/g, '{$1}')}`;
    const parameters = [
      ...parametersOf(route.params, 'path', convert),
      ...parametersOf(route.query, 'query', convert),
      ...parametersOf(route.headers, 'header', convert),
    ];
    const responses: Record<string, unknown> = {};
    for (const response of route.responses) {
      const problem = response.status >= 400;
      const headers = {
        ...HEADER_DESCRIPTIONS,
        ...(response.status === 401 && { 'www-authenticate': 'Bearer realm="m365-connector", with error="invalid_token" for a credential that was not accepted.' }),
        ...(response.status === 503 && route.authenticated && { 'retry-after': 'Seconds to wait before trying again.' }),
        ...response.headers,
      };
      responses[String(response.status)] = {
        description: response.description,
        headers: Object.fromEntries(Object.entries(headers).map(([name, description]) => [name, { description, schema: { type: 'string' } }])),
        ...(response.schema && {
          content: { [problem ? 'application/problem+json' : 'application/json']: { schema: convert(response.schema, 'output') } },
        }),
        ...(response.file !== undefined && { content: { [response.file]: { schema: { type: 'string', contentMediaType: response.file } } } }),
      };
    }
    (paths[path] ??= {})[route.method.toLowerCase()] = {
      operationId: route.name,
      tags: [route.tag],
      summary: route.summary,
      ...(route.description !== undefined && { description: route.description }),
      ...(parameters.length > 0 && { parameters }),
      ...(route.body && {
        requestBody: { required: !route.body.safeParse(undefined).success, content: { 'application/json': { schema: convert(route.body, 'input') } } },
      }),
      ...(route.upload && {
        requestBody: {
          required: true,
          description: route.upload.description,
          content: { '*/*': { schema: { type: 'string', contentMediaType: 'application/octet-stream', maxLength: route.upload.maxBytes } } },
        },
      }),
      responses,
      security: route.authenticated ? [{ apiKey: [] }, { apiKeyHeader: [] }, { signedToken: [] }] : [],
    };
  }

  const webhookItems = Object.fromEntries(
    webhooks.map((webhook) => [
      webhook.name,
      {
        post: {
          summary: webhook.summary,
          parameters: [
            { name: 'webhook-id', in: 'header', required: true, description: 'The event id: drop a delivery whose id you have seen.', schema: { type: 'string' } },
            { name: 'webhook-timestamp', in: 'header', required: true, description: 'Unix seconds of this attempt.', schema: { type: 'string' } },
            {
              name: 'webhook-signature',
              in: 'header',
              required: true,
              description: 'Standard Webhooks: space-separated `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, one per active secret.',
              schema: { type: 'string' },
            },
          ],
          requestBody: { required: true, content: { 'application/json': { schema: convert(webhook.schema, 'output') } } },
          responses: {
            '2XX': { description: 'Taken. Anything else is retried (408, 429, 5xx, timeouts after 10 s) or fails the delivery (other 3xx and 4xx).' },
          },
        },
      },
    ]),
  );

  return {
    openapi: '3.1.0',
    info: { title: 'm365-connector vendor API', version, description: DESCRIPTION },
    paths,
    webhooks: webhookItems,
    components: {
      schemas: components,
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: m365c_<prefix>_<secret>.' },
        apiKeyHeader: { type: 'apiKey', in: 'header', name: 'X-API-Key', description: 'The same API key, in its own header.' },
        signedToken: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'RS256/ES256, kid, iss (registered issuer), sub (customer id), iat, exp (at most 10 minutes after iat).',
        },
      },
    },
  };
}

function parametersOf(
  schema: z.ZodType | undefined,
  where: 'path' | 'query' | 'header',
  convert: (schema: z.ZodType, io: 'input' | 'output') => JsonSchema,
): unknown[] {
  if (!schema) return [];
  const json = convert(schema, 'input');
  const properties = (json.properties ?? {}) as Record<string, JsonSchema>;
  const required = new Set((json.required ?? []) as string[]);
  return Object.entries(properties).map(([name, property]) => {
    const { description, ...rest } = property;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      ...(typeof description === 'string' && { description }),
      schema: rest,
    };
  });
}

function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) => [
      key,
      key === '$ref' && typeof item === 'string' ? item.replace('#/$defs/', '#/components/schemas/') : rewriteRefs(item),
    ]),
  );
}
