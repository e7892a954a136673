import type { z } from 'zod';
import type { EntityKey, TableCodec, TableProperties, TableValue } from './table-repository.js';

/**
 * A Table Storage codec from a zod schema: scalar fields become columns (readable in Storage
 * Explorer), the listed structured fields are stored as JSON text, and every write and read is
 * checked against the schema: a value that could not be read back is never stored, and damaged or
 * foreign rows fail loudly instead of spreading.
 */
export function zodCodec<T extends Record<string, unknown>>(
  schema: z.ZodType<T>,
  jsonFields: readonly (keyof T & string)[],
): TableCodec<T> {
  const json = new Set<string>(jsonFields);
  return {
    toProperties(value) {
      const checked = schema.safeParse(value);
      if (!checked.success) {
        const fields = [...new Set(checked.error.issues.map((issue) => issue.path.join('.') || '(row)'))].join(', ');
        throw new TypeError(`Refusing to store a row that does not match its schema: ${fields}`);
      }
      const properties: TableProperties = {};
      for (const [name, field] of Object.entries(value)) {
        if (field === undefined) continue;
        if (json.has(name)) {
          properties[name] = JSON.stringify(field);
        } else if (isScalar(field)) {
          properties[name] = field;
        } else {
          throw new TypeError(`Field "${name}" is structured; list it among the JSON fields of its codec`);
        }
      }
      return properties;
    },
    fromProperties(properties, key: EntityKey) {
      const candidate: Record<string, unknown> = {};
      for (const [name, field] of Object.entries(properties)) {
        if (field === null || field === undefined) continue;
        candidate[name] = json.has(name) && typeof field === 'string' ? parseJson(field) : field;
      }
      const result = schema.safeParse(candidate);
      if (!result.success) {
        const fields = [...new Set(result.error.issues.map((issue) => issue.path.join('.') || '(row)'))].join(', ');
        throw new Error(`Stored row (PartitionKey '${key.partitionKey}', RowKey '${key.rowKey}') does not match its schema: ${fields}`);
      }
      return result.data;
    },
  };
}

function isScalar(value: unknown): value is TableValue {
  return ['string', 'number', 'boolean'].includes(typeof value) || value instanceof Date;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
