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
  components: { schemas: Record<string, JsonSchema>; securitySchemes: Record<string, unknown> };
}

const DESCRIPTION = [
  'The vendor API of m365-connector: customers, their Microsoft 365 connections and mailboxes, and the events the connector emits.',
  '',
  'Authenticate with `Authorization: Bearer <credential>`, where the credential is an API key (`m365c_…`, made with',
  '`npm run connector -- keys create`) or a short-lived JWT signed by an issuer registered with `npm run connector -- issuers add`.',
  'Errors are RFC 9457 problem details (`application/problem+json`).',
].join('\n');

export function buildOpenApiDocument<S>(routes: readonly ApiRoute<S>[], version: string): OpenApiDocument {
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
    ];
    const responses: Record<string, unknown> = {};
    for (const response of route.responses) {
      const problem = response.status >= 400;
      responses[String(response.status)] = {
        description: response.description,
        ...(response.schema && {
          content: { [problem ? 'application/problem+json' : 'application/json']: { schema: convert(response.schema, 'output') } },
        }),
      };
    }
    (paths[path] ??= {})[route.method.toLowerCase()] = {
      operationId: route.name,
      tags: [route.tag],
      summary: route.summary,
      ...(route.description !== undefined && { description: route.description }),
      ...(parameters.length > 0 && { parameters }),
      ...(route.body && { requestBody: { required: true, content: { 'application/json': { schema: convert(route.body, 'input') } } } }),
      responses,
      security: route.authenticated ? [{ apiKey: [] }, { signedToken: [] }] : [],
    };
  }

  return {
    openapi: '3.1.0',
    info: { title: 'm365-connector vendor API', version, description: DESCRIPTION },
    paths,
    components: {
      schemas: components,
      securitySchemes: {
        apiKey: { type: 'http', scheme: 'bearer', description: 'An API key: m365c_<prefix>_<secret>. Also accepted in X-API-Key.' },
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
  where: 'path' | 'query',
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
