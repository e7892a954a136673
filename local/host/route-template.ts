/**
 * Route templates as the Functions host (ASP.NET Core routing) reads them: literal segments
 * matched case-insensitively, `{name}`, optional `{name?}`, defaults `{name=value}`, constraints
 * `{id:int}`, `{id:guid}`, `{name:length(1,64)}`…, and a final catch-all `{*rest}`.
 */

export interface CompiledRoute {
  template: string;
  match(path: string): Record<string, string> | undefined;
  /** Sort key: routes with more literal, more constrained segments are tried first. */
  precedence: number[];
}

interface Parameter {
  name: string;
  optional: boolean;
  catchAll: boolean;
  defaultValue?: string;
  constraints: ((value: string) => boolean)[];
}

const GUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

function constraint(spec: string, template: string): (value: string) => boolean {
  const match = /^([a-z]+)(?:\((.*)\))?$/i.exec(spec);
  if (!match) throw new Error(`Route "${template}": cannot read constraint "${spec}"`);
  const name = (match[1] ?? '').toLowerCase();
  const args = (match[2] ?? '').split(',').map((a) => a.trim());
  const n = (i: number) => {
    const value = Number(args[i]);
    if (!Number.isFinite(value)) throw new Error(`Route "${template}": constraint "${spec}" needs numeric arguments`);
    return value;
  };
  switch (name) {
    case 'int':
    case 'long':
      return (v) => /^-?\d+$/.test(v);
    case 'decimal':
    case 'double':
    case 'float':
      return (v) => v.trim() !== '' && Number.isFinite(Number(v));
    case 'bool':
      return (v) => /^(true|false)$/i.test(v);
    case 'guid':
      return (v) => GUID.test(v);
    case 'datetime':
      return (v) => !Number.isNaN(Date.parse(v));
    case 'alpha':
      return (v) => /^[a-z]+$/i.test(v);
    case 'minlength':
      return (v) => v.length >= n(0);
    case 'maxlength':
      return (v) => v.length <= n(0);
    case 'length':
      return args.length === 2 ? (v) => v.length >= n(0) && v.length <= n(1) : (v) => v.length === n(0);
    case 'min':
      return (v) => Number(v) >= n(0);
    case 'max':
      return (v) => Number(v) <= n(0);
    case 'range':
      return (v) => Number(v) >= n(0) && Number(v) <= n(1);
    case 'regex': {
      const pattern = new RegExp(match[2] ?? '', 'i');
      return (v) => pattern.test(v);
    }
    default:
      throw new Error(`Route "${template}": unknown constraint "${name}"`);
  }
}

function parseParameter(body: string, template: string): Parameter {
  const catchAll = body.startsWith('*');
  let rest = catchAll ? body.replace(/^\*+/, '') : body;
  let defaultValue: string | undefined;
  const eq = rest.indexOf('=');
  if (eq >= 0) {
    defaultValue = rest.slice(eq + 1);
    rest = rest.slice(0, eq);
  }
  const optional = rest.endsWith('?');
  if (optional) rest = rest.slice(0, -1);
  // A colon inside a constraint's parentheses (a regex) does not start another constraint.
  const [name = '', ...specs] = rest.split(/:(?![^(]*\))/);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`Route "${template}": bad parameter name "${name}"`);
  return {
    name,
    optional: optional || catchAll || defaultValue !== undefined,
    catchAll,
    ...(defaultValue !== undefined && { defaultValue }),
    constraints: specs.map((s) => constraint(s, template)),
  };
}

/**
 * Splits a segment into literal text and parameter bodies. As in ASP.NET Core, `{{` and `}}`
 * stand for literal braces, also inside a parameter (regex constraints).
 */
function tokenizeSegment(segment: string, template: string): { kind: 'literal' | 'parameter'; text: string }[] {
  const parts: { kind: 'literal' | 'parameter'; text: string }[] = [];
  let literal = '';
  for (let i = 0; i < segment.length; i++) {
    const char = segment[i];
    if ((char === '{' || char === '}') && segment[i + 1] === char) {
      literal += char;
      i++;
    } else if (char === '{') {
      let body = '';
      let j = i + 1;
      for (; j < segment.length; j++) {
        const c = segment[j];
        if ((c === '{' || c === '}') && segment[j + 1] === c) {
          body += c;
          j++;
        } else if (c === '}') {
          break;
        } else {
          body += c ?? '';
        }
      }
      if (j >= segment.length || body === '') throw new Error(`Route "${template}": unbalanced braces in "${segment}"`);
      if (literal !== '') parts.push({ kind: 'literal', text: literal });
      literal = '';
      parts.push({ kind: 'parameter', text: body });
      i = j;
    } else if (char === '}') {
      throw new Error(`Route "${template}": unbalanced braces in "${segment}"`);
    } else {
      literal += char ?? '';
    }
  }
  if (literal !== '') parts.push({ kind: 'literal', text: literal });
  return parts;
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function compileRoute(template: string): CompiledRoute {
  const clean = template.replace(/^\/+|\/+$/g, '');
  const segments = clean === '' ? [] : clean.split('/');
  const parameters: Parameter[] = [];
  const precedence: number[] = [];
  let pattern = '^';
  segments.forEach((segment, index) => {
    const parts = tokenizeSegment(segment, template);
    const params = parts.filter((p) => p.kind === 'parameter').map((p) => parseParameter(p.text, template));
    const only = parts.length === 1 ? params[0] : undefined;
    if (only?.catchAll) {
      if (index !== segments.length - 1) throw new Error(`Route "${template}": a catch-all must be the last segment`);
      pattern += `(?:/(?<${only.name}>.*))?`;
      precedence.push(5);
    } else if (only?.optional) {
      pattern += `(?:/(?<${only.name}>[^/]+))?`;
      precedence.push(4);
    } else {
      let regex = '';
      let paramIndex = 0;
      for (const part of parts) {
        if (part.kind === 'parameter') {
          const param = params[paramIndex++];
          if (!param) throw new Error(`Route "${template}": cannot read segment "${segment}"`);
          if (param.catchAll) throw new Error(`Route "${template}": a catch-all must be a whole segment`);
          regex += `(?<${param.name}>[^/]+?)`;
        } else {
          regex += escape(part.text);
        }
      }
      pattern += `/${regex}`;
      precedence.push(params.length === 0 ? 1 : params.some((p) => p.constraints.length > 0) ? 2 : 3);
    }
    parameters.push(...params);
  });
  const names = parameters.map((p) => p.name.toLowerCase());
  if (new Set(names).size !== names.length) throw new Error(`Route "${template}": a parameter name is used twice`);
  const regex = new RegExp(`${pattern}/?$`, 'i');

  return {
    template: clean,
    precedence,
    match(path) {
      const found = regex.exec(path === '' || path.startsWith('/') ? path : `/${path}`);
      if (!found) return undefined;
      const values: Record<string, string> = {};
      for (const param of parameters) {
        const raw = found.groups?.[param.name];
        if (raw === undefined || raw === '') {
          if (!param.optional) return undefined;
          if (param.defaultValue !== undefined) values[param.name] = param.defaultValue;
          continue;
        }
        let value: string;
        try {
          // ASP.NET Core decodes route values except for an encoded slash.
          value = decodeURIComponent(raw.replace(/%2F/gi, '%252F'));
        } catch {
          return undefined;
        }
        if (!param.constraints.every((check) => check(value))) return undefined;
        values[param.name] = value;
      }
      return values;
    },
  };
}

/** Orders routes so the most specific template is tried first. */
export function compareRoutes(a: CompiledRoute, b: CompiledRoute): number {
  const length = Math.max(a.precedence.length, b.precedence.length);
  for (let i = 0; i < length; i++) {
    const diff = (a.precedence[i] ?? 0) - (b.precedence[i] ?? 0);
    if (diff !== 0) return diff;
  }
  return b.precedence.length - a.precedence.length;
}
