import { execFile } from 'node:child_process';
import { glob, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { FunctionRegistry, installCoreApi } from '../../local/host/core-api.js';
import { apiRoutes } from '../../src/api/routes/index.js';

/**
 * What the Azure Functions worker will index: the app is compiled as for deployment, the files
 * package.json "main" names are loaded with a stand-in for the worker's @azure/functions-core
 * module, and every registration is compared with the table below. Adding, renaming or
 * re-routing a function means updating this table on purpose.
 */

const expected = [
  // One HTTP function per API operation, all anonymous at the host: the API checks its own credentials.
  ...apiRoutes.map((route) => ({ name: route.name, trigger: 'httpTrigger', route: route.path, methods: [route.method], authLevel: 'anonymous' })),
  { name: 'deliver-event', trigger: 'queueTrigger', queueName: 'deliver-event', connection: 'AzureWebJobsStorage' },
  // Webhook deliveries left without a queue message: the timer fans out a sweep per customer.
  { name: 'delivery-sweep-timer', trigger: 'timerTrigger', schedule: '30 2-59/5 * * * *' },
  { name: 'delivery-sweep', trigger: 'queueTrigger', queueName: 'delivery-sweep', connection: 'AzureWebJobsStorage' },
  { name: 'connect-sweep', trigger: 'timerTrigger', schedule: '0 17 * * * *' },
  // Token upkeep: the timer finds due connections, the queues page through them and refresh each.
  { name: 'credential-check', trigger: 'timerTrigger', schedule: '0 40 6 * * *' },
  { name: 'refresh-timer', trigger: 'timerTrigger', schedule: '0 4-59/15 * * * *' },
  { name: 'refresh-scan', trigger: 'queueTrigger', queueName: 'refresh-scan', connection: 'AzureWebJobsStorage' },
  { name: 'refresh-connection', trigger: 'queueTrigger', queueName: 'refresh-connection', connection: 'AzureWebJobsStorage' },
  // Outbound mail: one queue message per message to send (or to look at again).
  { name: 'send-mail', trigger: 'queueTrigger', queueName: 'send-mail', connection: 'AzureWebJobsStorage' },
  // Inbound mail: the timer finds due mailboxes, the queues page through them and look at each;
  // Graph posts notifications to two anonymous URLs, which only queue them.
  { name: 'poll-timer', trigger: 'timerTrigger', schedule: '0 * * * * *' },
  { name: 'poll-scan', trigger: 'queueTrigger', queueName: 'poll-scan', connection: 'AzureWebJobsStorage' },
  { name: 'poll-mailbox', trigger: 'queueTrigger', queueName: 'poll-mailbox', connection: 'AzureWebJobsStorage' },
  { name: 'graph-notification', trigger: 'queueTrigger', queueName: 'graph-notification', connection: 'AzureWebJobsStorage' },
  { name: 'graph-notifications', trigger: 'httpTrigger', route: 'graph/notifications', methods: ['POST'], authLevel: 'anonymous' },
  { name: 'graph-lifecycle', trigger: 'httpTrigger', route: 'graph/lifecycle', methods: ['POST'], authLevel: 'anonymous' },
  { name: 'inbox-retention', trigger: 'timerTrigger', schedule: '0 20 3 * * *' },
  // The connect pages and the two redirect URIs registered on the vendor's app.
  ...(
    [
      ['connect-landing', 'connect/{link}', 'GET'],
      ['connect-start', 'connect/{link}/start', 'POST'],
      ['connect-callback', 'connect/callback', 'POST'],
      ['connect-admin-callback', 'connect/admin-callback', 'GET'],
      ['connect-result', 'connect/result/{id}', 'GET'],
      ['connect-result-check', 'connect/result/{id}/check', 'POST'],
      ['connect-problem', 'connect/problem/{reason}', 'GET'],
    ] as const
  ).map(([name, route, method]) => ({ name, trigger: 'httpTrigger', route, methods: [method], authLevel: 'anonymous' })),
].sort((a, b) => a.name.localeCompare(b.name));
const expectedHooks = ['appStart', 'preInvocation'];

describe('function registrations', () => {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  // Inside the repository, so the compiled files resolve node_modules as dist/ does.
  const outDir = join(root, '.local', `registrations-${process.pid}`);

  afterAll(async () => {
    await rm(outDir, { recursive: true, force: true });
  });

  it('registers exactly the expected functions and hooks from the compiled entry files', async () => {
    // Type errors are the typecheck's business (npm test runs it); this only needs the emitted files.
    await promisify(execFile)(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--noCheck', '--outDir', outDir], {
      cwd: root,
    });
    const { main } = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { main: string };
    expect(main).toBe('dist/functions/*.js');

    const registry = installCoreApi(() => undefined);
    const files: string[] = [];
    for await (const file of glob(main.replace(/^dist\//, ''), { cwd: outDir })) files.push(file);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files.sort()) await import(pathToFileURL(join(outDir, file)).href);

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
  }, 120_000);
});
