import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { mailboxKey, type MailboxRef } from './mail-store.js';

/**
 * The state tokens of message delta queries (`$skiptoken` in `@odata.nextLink`, `$deltatoken` in
 * `@odata.deltaLink`): opaque to the client, here the round's cursor as base64url JSON. Graph keeps
 * Outlook's sync states in a cache of its own and forgets old ones ("the upper limit is not fixed");
 * the sandbox forgets them when told to (`expire`, the control call expireDeltaTokens) and when it
 * restarts (its mail is gone then too). A token it forgot answers 410 Gone, one it cannot read 400.
 */

const deltaOptions = z.object({
  select: z.array(z.string()).optional(),
  filter: z.object({ operator: z.enum(['ge', 'gt']), at: z.number(), text: z.string() }).optional(),
  top: z.number().int().positive().optional(),
  changeType: z.enum(['created', 'updated', 'deleted']).optional(),
});

const deltaCursor = z.object({
  /** The mailbox (mailboxKey) and folder (well-known name) the token tracks. */
  mailbox: z.string(),
  folder: z.string(),
  /** The initial request's query options, which Graph carries in its tokens. */
  options: deltaOptions,
  /**
   * `sync`: the initial round, the folder as it was at `upTo`, newest first; `position` is the
   * arrival of the last message given, the next page starts below it. `changes`: a later round,
   * the changes in (since, upTo]; `position` is the sequence of the last change given.
   */
  phase: z.enum(['sync', 'changes']),
  since: z.number().int().min(0),
  upTo: z.number().int().min(0),
  position: z.number().int().min(0).nullable(),
});

export type DeltaOptions = z.infer<typeof deltaOptions>;
export type DeltaCursor = z.infer<typeof deltaCursor>;

const token = z.object({ v: z.literal(1), instance: z.string(), generation: z.number().int().min(0), cursor: deltaCursor });

export type ReadToken = { kind: 'valid'; cursor: DeltaCursor } | { kind: 'malformed' } | { kind: 'stale'; cursor: DeltaCursor; generation: number; highest: number };

export class DeltaTokens {
  /** Tokens of another sandbox run name sync states this one never had. */
  private readonly instance = randomUUID();
  private generation = 0;
  /** The generation each mailbox's tokens must be of at least, once expired. */
  private readonly validFrom = new Map<string, number>();

  issue(cursor: DeltaCursor): string {
    return Buffer.from(JSON.stringify({ v: 1, instance: this.instance, generation: this.generation, cursor })).toString('base64url');
  }

  read(value: string): ReadToken {
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'));
    } catch {
      return { kind: 'malformed' };
    }
    const result = token.safeParse(parsed);
    if (!result.success) return { kind: 'malformed' };
    const { instance, generation, cursor } = result.data;
    const oldest = this.validFrom.get(cursor.mailbox) ?? 0;
    if (instance !== this.instance || generation < oldest) return { kind: 'stale', cursor, generation, highest: this.generation };
    return { kind: 'valid', cursor };
  }

  /** Every token of the mailbox issued until now is forgotten (410 from now on); new ones work. */
  expire(mailbox: MailboxRef): void {
    this.generation += 1;
    this.validFrom.set(mailboxKey(mailbox), this.generation);
  }
}
