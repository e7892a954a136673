/**
 * A minimal browser for the sandbox identity platform's pages (local/sandbox/identity/pages.ts):
 * it follows redirects, reads the forms of a page, clicks a button by its text, and auto-submits
 * `response_mode=form_post` forms the way a browser runs their script. It stops when the next
 * request would go to the app (a URL under one of `appUrls`) and reports that request instead of
 * sending it, so tests read the code, state or error the app would receive.
 */

export interface ArrivedAtApp {
  kind: 'app';
  method: 'GET' | 'POST';
  url: URL;
  /** The answer's parameters, from the query, the fragment or the form body. */
  params: URLSearchParams;
}

interface Form {
  action: string;
  method: 'GET' | 'POST';
  fields: [string, string][];
  checkboxes: string[];
  buttons: { name?: string; value?: string; text: string }[];
}

const ENTITIES: Readonly<Record<string, string>> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };

function decode(text: string): string {
  return text.replace(/&(amp|lt|gt|quot|#39);/g, (entity) => ENTITIES[entity] ?? entity);
}

function attributes(tag: string): Record<string, string> {
  const found: Record<string, string> = {};
  for (const [, name, value] of tag.matchAll(/([\w-]+)="([^"]*)"/g)) if (name !== undefined) found[name] = decode(value ?? '');
  return found;
}

function visibleText(html: string): string {
  return decode(html.replace(/<style[\s\S]*?<\/style>|<script[\s\S]*?<\/script>/g, '').replace(/<br\s*\/?>/g, ' ').replace(/<[^>]+>/g, ' ')).replace(/\s+/g, ' ').trim();
}

function parseForms(html: string, base: string): Form[] {
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].map(([, tag = '', body = '']) => {
    const attrs = attributes(tag);
    const fields: [string, string][] = [];
    const checkboxes: string[] = [];
    for (const [, inputTag = ''] of body.matchAll(/<input\b([^>]*)>/g)) {
      const input = attributes(inputTag);
      if (input.name === undefined) continue;
      if (input.type === 'checkbox') checkboxes.push(input.name);
      else if (input.type !== 'submit') fields.push([input.name, input.value ?? '']);
    }
    const buttons = [...body.matchAll(/<button\b([^>]*)>([\s\S]*?)<\/button>/g)].map(([, buttonTag = '', inner = '']) => {
      const button = attributes(buttonTag);
      return { name: button.name, value: button.value, text: visibleText(inner) };
    });
    return { action: new URL(attrs.action ?? base, base).toString(), method: attrs.method?.toUpperCase() === 'POST' ? 'POST' : 'GET', fields, checkboxes, buttons };
  });
}

export class SandboxPage {
  readonly kind = 'page';
  readonly forms: Form[];

  constructor(
    private readonly browser: SandboxBrowser,
    readonly url: URL,
    readonly status: number,
    readonly html: string,
  ) {
    this.forms = parseForms(html, url.toString());
  }

  get text(): string {
    return visibleText(this.html);
  }

  get heading(): string {
    return visibleText(/<h1[^>]*>([\s\S]*?)<\/h1>/.exec(this.html)?.[1] ?? '');
  }

  /**
   * Clicks the submit button whose text contains `label` and submits its form. `fields` fills
   * inputs by name; a checkbox is sent only when named there (ticked).
   */
  click(label: string | RegExp, fields: Record<string, string> = {}): Promise<SandboxPage | ArrivedAtApp> {
    for (const form of this.forms) {
      const button = form.buttons.find((b) => (typeof label === 'string' ? b.text.includes(label) : label.test(b.text)));
      if (!button) continue;
      const body = new URLSearchParams(form.fields.map(([name, value]): [string, string] => [name, fields[name] ?? value]));
      for (const name of form.checkboxes) if (fields[name] !== undefined) body.append(name, fields[name]);
      if (button.name !== undefined) body.append(button.name, button.value ?? '');
      return this.browser.navigate(form.method, new URL(form.action), body);
    }
    const choices = this.forms.flatMap((f) => f.buttons.map((b) => `"${b.text}"`)).join(', ');
    throw new Error(`No button "${String(label)}" on "${this.heading}" (${this.url.toString()}); buttons: ${choices || 'none'}. Page text: ${this.text}`);
  }
}

export class SandboxBrowser {
  constructor(private readonly appUrls: readonly string[]) {}

  open(url: string): Promise<SandboxPage | ArrivedAtApp> {
    return this.navigate('GET', new URL(url));
  }

  async navigate(method: 'GET' | 'POST', start: URL, body?: URLSearchParams): Promise<SandboxPage | ArrivedAtApp> {
    let url = start;
    let requestMethod = method;
    let requestBody = body;
    for (let hops = 0; hops < 10; hops++) {
      if (this.appUrls.some((prefix) => url.toString().startsWith(prefix))) {
        const params = requestBody ?? new URLSearchParams(url.hash !== '' ? url.hash.slice(1) : url.search);
        return { kind: 'app', method: requestMethod, url, params };
      }
      const response = await fetch(url, {
        method: requestMethod,
        redirect: 'manual',
        ...(requestBody === undefined ? {} : { body: requestBody, headers: { 'Content-Type': 'application/x-www-form-urlencoded' } }),
      });
      const location = response.headers.get('location');
      if (response.status >= 300 && response.status < 400 && location !== null) {
        await response.body?.cancel();
        url = new URL(location, url);
        requestMethod = 'GET';
        requestBody = undefined;
        continue;
      }
      const page = new SandboxPage(this, url, response.status, await response.text());
      const autoSubmitted = /document\.forms\[0\]\.submit\(\)/.test(page.html) ? page.forms[0] : undefined;
      if (!autoSubmitted) return page;
      url = new URL(autoSubmitted.action);
      requestMethod = autoSubmitted.method;
      requestBody = new URLSearchParams(autoSubmitted.fields);
    }
    throw new Error(`More than 10 redirects from ${start.toString()}`);
  }
}

/** The result of a browser step that must be a sandbox page. */
export function page(result: SandboxPage | ArrivedAtApp): SandboxPage {
  if (result.kind !== 'page') throw new Error(`expected a page, the browser stopped before ${result.url.toString()}`);
  return result;
}

/** The result of a browser step that must have reached the connector. */
export function arrived(result: SandboxPage | ArrivedAtApp): ArrivedAtApp {
  if (result.kind !== 'app') throw new Error(`expected the browser to stop before the connector, it shows "${result.heading}": ${result.text}`);
  return result;
}
