import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import type { OpenApiDocument } from '../../src/api/openapi.js';

/**
 * Checks responses against the OpenAPI document the API publishes: the schema of the operation's
 * response for that status and content type, with the document's components resolvable.
 */
export class OpenApiValidator {
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true });
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(private readonly document: OpenApiDocument) {
    (addFormats as unknown as (ajv: Ajv2020) => void)(this.ajv);
    this.ajv.addSchema({ $id: 'https://m365-connector.test/openapi', components: document.components });
  }

  /** The operation (OpenAPI path and method) documents `status` with this content type, and `body` fits its schema. */
  check(path: string, method: string, status: number, contentType: string | null, body: unknown): string[] {
    const operation = this.document.paths[path]?.[method.toLowerCase()] as
      | { responses?: Record<string, { content?: Record<string, { schema?: object }> }> }
      | undefined;
    if (!operation) return [`${method} ${path} is not in the OpenAPI document`];
    const response = operation.responses?.[String(status)];
    if (!response) return [`${method} ${path} does not document status ${status}`];
    const [documentedType, content] = response.content ? (Object.entries(response.content)[0] ?? []) : [];
    if (!content?.schema) return body === undefined ? [] : [`${method} ${path} ${status} documents no body`];
    // A file whose type is its own ("*/*") may come as any type.
    if (documentedType !== '*/*' && documentedType !== (contentType ?? '').split(';')[0]?.trim()) {
      return [`${method} ${path} ${status}: content type ${String(contentType)}, documented ${String(documentedType)}`];
    }
    const key = `${method} ${path} ${status}`;
    let validate = this.compiled.get(key);
    if (!validate) {
      const schema = JSON.parse(JSON.stringify(content.schema).replaceAll('"#/components/', '"https://m365-connector.test/openapi#/components/')) as object;
      validate = this.ajv.compile(schema);
      this.compiled.set(key, validate);
    }
    return validate(body) ? [] : (validate.errors ?? []).map((e) => `${key}: ${e.instancePath || '/'} ${e.message ?? ''}`);
  }
}
