import type { Services } from '../src/composition.js';
import { createConnection } from '../src/connections/connections.js';
import { addMailbox } from '../src/connections/mailboxes.js';
import type { ConnectionMode, Transports } from '../src/domain/connection.js';
import { keys } from '../src/store/repositories.js';
import { AlreadyExistsError } from '../src/store/table-repository.js';
import type { SandboxDemo } from './sandbox-demo.js';

/**
 * The vendor side of the `npm start` demo: the sandbox app's client secret in the secret store
 * (where a deployment keeps it), a demo customer, and one connection per mode, each with a fresh
 * consent link printed on every start (links expire; the connections stay).
 */

export const DEMO_CUSTOMER = 'contoso';

const DEMO_CONNECTIONS: { name: string; mode: ConnectionMode; transports: Transports }[] = [
  { name: 'delegated', mode: 'delegated', transports: { send: 'graph', receive: 'graph' } },
  // Exchange app-only protocols, so the demo also shows the PowerShell page an admin follows.
  { name: 'application', mode: 'application', transports: { send: 'smtp', receive: 'imap' } },
];

export interface DemoLink {
  name: string;
  mode: ConnectionMode;
  connectionId: string;
  url: string;
}

export async function prepareDemoConnections(demo: SandboxDemo, services: Services): Promise<DemoLink[]> {
  const identity = services.identity;
  const app = services.config.identity?.apps[0];
  if (!identity || !app) throw new Error('the sandbox settings did not configure the connect flow');
  if (app.credential.kind === 'secret' && (demo.appIsNew || !(await services.secrets.get(app.credential.secretName)))) {
    await services.secrets.set(app.credential.secretName, await demo.addClientSecret());
  }

  const at = new Date().toISOString();
  try {
    await services.repositories.customers.create(keys.customer(DEMO_CUSTOMER), { id: DEMO_CUSTOMER, displayName: 'Contoso (sandbox demo)', tags: {}, createdAt: at, updatedAt: at });
  } catch (error) {
    if (!(error instanceof AlreadyExistsError)) throw error;
  }

  const links: DemoLink[] = [];
  for (const { name, mode, transports } of DEMO_CONNECTIONS) {
    const savedId = demo.connections[name];
    const existing = savedId === undefined ? undefined : await services.repositories.connections.get(keys.connection(DEMO_CUSTOMER, savedId));
    const connection = existing?.value ?? (await createConnection(services.api.connections, { customerId: DEMO_CUSTOMER, mode, appId: app.id, transports, tags: { demo: 'npm-start' } }));
    if (!existing) {
      // The application connection serves the demo tenant's shared mailbox, so its PowerShell has per-mailbox commands.
      if (mode === 'application') await addMailbox({ mailboxes: services.repositories.mailboxes, receiveState: services.repositories.receiveState, now: () => new Date() }, connection, { address: demo.directory.sharedMailbox, kind: 'shared' });
      await demo.rememberConnection(name, connection.id);
    }
    const link = await identity.links.issue(DEMO_CUSTOMER, connection.id, 'connect');
    links.push({ name, mode, connectionId: connection.id, url: link.url });
  }
  return links;
}
