import { z } from 'zod';
import { CONNECTION_STATES } from './connection.js';

/**
 * The result of a connectivity check: per mailbox and transport, each step the connector takes to
 * move mail (a token, then the protocol), with a named cause when one failed. Steps after a failed
 * one are listed as skipped, so the first failure is the one to fix.
 */

export const CHECK_STEPS = ['token', 'graph', 'imap', 'pop3', 'smtp'] as const;
export type CheckStepName = (typeof CHECK_STEPS)[number];

export const checkCauseSchema = z
  .object({
    code: z.string().meta({
      description:
        'What failed: consent_missing, exchange_service_principal_missing, mailbox_permission_missing, smtp_auth_disabled, ' +
        'authentication_unsuccessful, not_connected, network_unreachable, sign_in_expired, tenant_policy, app_misconfigured, …',
    }),
    explanation: z.string(),
    nextStep: z.string(),
    /** Microsoft's own code behind it (AADSTS…, Graph's error code), when there is one. */
    microsoftCode: z.string().optional(),
  })
  .meta({ id: 'CheckCause' });
export type CheckCause = z.infer<typeof checkCauseSchema>;

export const checkStepSchema = z
  .object({
    step: z.enum(CHECK_STEPS),
    /** The token's resource (token steps), or the mailbox probed (protocol steps). */
    resource: z.enum(['graph', 'outlook']).optional(),
    mailbox: z.string().optional(),
    outcome: z.enum(['ok', 'failed', 'skipped']),
    durationMs: z.int().nonnegative(),
    cause: checkCauseSchema.optional(),
    /** What the server answered, credentials removed. */
    serverText: z.string().optional(),
    /** The network's or the mail client's error code (ECONNREFUSED, EAUTH), when there was one. */
    errorCode: z.string().optional(),
    detail: z.record(z.string(), z.unknown()).optional(),
  })
  .meta({ id: 'CheckStep' });
export type CheckStep = z.infer<typeof checkStepSchema>;

export const connectionCheckSchema = z
  .object({
    connectionId: z.string(),
    state: z.enum(CONNECTION_STATES),
    checkedAt: z.iso.datetime(),
    ok: z.boolean().meta({ description: 'True when every step succeeded.' }),
    steps: z.array(checkStepSchema),
  })
  .meta({ id: 'ConnectionCheck' });
export type ConnectionCheck = z.infer<typeof connectionCheckSchema>;
