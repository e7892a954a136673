import { readFile, readdir } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { FunctionRegistry, installCoreApi } from '../../local/host/core-api.js';

/**
 * What the Azure Functions worker will index: functions/ is loaded with a stand-in for the
 * worker's @azure/functions-core module, and every registration is compared with the table
 * below. Adding, renaming or re-routing a function means updating this table on purpose.
 */

const expected = [
  { name: 'health', trigger: 'httpTrigger', route: 'health', methods: ['GET'], authLevel: 'anonymous' },
];
const expectedHooks = ['appStart'];

describe('function registrations', () => {
  it('registers exactly the expected functions and hooks, from the files package.json "main" names', async () => {
    const registry = installCoreApi(() => undefined);
    const root = new URL('../../', import.meta.url);
    const packageJson = JSON.parse(await readFile(new URL('package.json', root), 'utf8')) as { main: string };
    // Azure loads the compiled files; the test loads their sources from the same folder.
    expect(packageJson.main).toBe('dist/functions/*.js');
    const sources = (await readdir(fileURLToPath(new URL('functions/', root)))).filter((f) => f.endsWith('.ts')).sort();
    for (const file of sources) await import(pathToFileURL(fileURLToPath(new URL(`functions/${file}`, root))).href);

    expect(registry.programmingModel?.name).toBe('@azure/functions');
    const registered = [...registry.functions.values()].map(({ metadata }) => {
      const { binding } = FunctionRegistry.triggerOf(metadata);
      return {
        name: metadata.name,
        trigger: binding.type,
        ...(binding.type === 'httpTrigger' && { route: binding.route, methods: binding.methods, authLevel: binding.authLevel }),
        ...(binding.type === 'timerTrigger' && { schedule: binding.schedule }),
        ...(binding.type === 'queueTrigger' && { queueName: binding.queueName, connection: binding.connection }),
      };
    });
    expect(registered.sort((a, b) => a.name.localeCompare(b.name))).toEqual(expected);
    expect([...registry.hooks.entries()].filter(([, list]) => list.length > 0).map(([name]) => name)).toEqual(expectedHooks);

    for (const { metadata } of registry.functions.values()) {
      const { binding } = FunctionRegistry.triggerOf(metadata);
      if (binding.type === 'timerTrigger') {
        expect(String(binding.schedule).trim().split(/\s+/), `${metadata.name}: 6-field NCRONTAB`).toHaveLength(6);
      }
    }
  });
});
