import { createHash, createHmac, randomBytes } from 'node:crypto';
import { ConcurrencyError, type TableRepository } from '../store/table-repository.js';
import type { ConnectorKeys } from './connector-keys.js';
import type { SignInState } from '../domain/sign-in-state.js';

/**
 * The `state` of a sign-in or consent round trip to Microsoft: made when the person leaves for
 * Microsoft, bound to one connection, valid for a limited time, and usable once. Nothing secret is
 * stored: the PKCE verifier is derived from the state id with the connector's key when needed.
 */

/** How long a person may take at Microsoft's pages; authorization codes live about 10 minutes. */
export const SIGN_IN_STATE_TTL_MS = 30 * 60_000;

export function stateKey(id: string): { partitionKey: string; rowKey: string } {
  // The first characters spread the states over partitions; ids are random.
  return { partitionKey: id.slice(0, 2), rowKey: id };
}

export interface NewSignIn {
  state: SignInState;
  codeVerifier: string;
  codeChallenge: string;
}

export type ConsumedState =
  | { outcome: 'valid'; state: SignInState; codeVerifier: string }
  | { outcome: 'unknown' | 'expired' | 'used' };

export class SignInStates {
  constructor(
    private readonly states: TableRepository<SignInState>,
    private readonly keys: Pick<ConnectorKeys, 'derive'>,
    private readonly now: () => Date,
  ) {}

  async create(
    input: Pick<SignInState, 'customerId' | 'connectionId' | 'purpose' | 'step'> & Partial<Pick<SignInState, 'tenantId' | 'signedInOid' | 'signedInUpn' | 'lang'>>,
  ): Promise<NewSignIn> {
    const now = this.now();
    const state: SignInState = {
      ...input,
      id: randomBytes(32).toString('base64url'),
      nonce: randomBytes(16).toString('base64url'),
      createdAt: now.toISOString(),
      expiresAt: new Date(now.getTime() + SIGN_IN_STATE_TTL_MS).toISOString(),
    };
    await this.states.create(stateKey(state.id), state);
    const codeVerifier = await this.verifier(state.id);
    return { state, codeVerifier, codeChallenge: createHash('sha256').update(codeVerifier).digest('base64url') };
  }

  /** Marks the state used and returns it; a second use, an unknown id or an old one is refused. */
  async consume(id: string): Promise<ConsumedState> {
    if (!/^[A-Za-z0-9_-]{43}$/.test(id)) return { outcome: 'unknown' };
    const found = await this.states.get(stateKey(id));
    if (!found) return { outcome: 'unknown' };
    if (found.value.consumedAt !== undefined) return { outcome: 'used' };
    if (Date.parse(found.value.expiresAt) <= this.now().getTime()) return { outcome: 'expired' };
    try {
      await this.states.replace(stateKey(id), { ...found.value, consumedAt: this.now().toISOString() }, found.etag);
    } catch (error) {
      // Another request used it between our read and our write.
      if (error instanceof ConcurrencyError) return { outcome: 'used' };
      throw error;
    }
    return { outcome: 'valid', state: found.value, codeVerifier: await this.verifier(id) };
  }

  private async verifier(stateId: string): Promise<string> {
    return createHmac('sha256', await this.keys.derive('pkce-verifier')).update(stateId).digest('base64url');
  }
}
