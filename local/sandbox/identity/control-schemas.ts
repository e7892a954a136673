import { z } from 'zod';
import type { AppRegistration, ClientSecret, Mailbox, User } from './sandbox-state.js';

/**
 * What the control API accepts (zod schemas, so a wrong call gets a readable 400) and what it
 * answers, shared by the routes (control-api.ts) and the typed client (control-client.ts).
 */

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const guid = z.string().regex(GUID, 'must be a GUID').transform((s) => s.toLowerCase());
const when = z.union([z.number(), z.iso.datetime()]).transform((v) => (typeof v === 'number' ? v : Date.parse(v)));

export const createTenantInput = z.object({ id: guid.optional(), displayName: z.string().min(1), domains: z.array(z.string().min(1)).optional() });
export const tenantPoliciesInput = z.object({ userConsentBlocked: z.boolean().optional(), conditionalAccessBlocked: z.boolean().optional() });
export const createUserInput = z.object({
  id: guid.optional(),
  userPrincipalName: z.email(),
  displayName: z.string().min(1).optional(),
  isAdmin: z.boolean().optional(),
  /** For the password grant (ROPC); kept only as a hash, never shown again. */
  password: z.string().min(1).optional(),
  /** false: a user without an Exchange Online mailbox (unlicensed), which Graph mail calls refuse. */
  mailbox: z.boolean().optional(),
});
export const revokeSessionsInput = z.object({ reason: z.enum(['revoked', 'inactive']).optional() });
export const createMailboxInput = z.object({
  address: z.email(),
  displayName: z.string().min(1).optional(),
  kind: z.enum(['user', 'shared']).optional(),
  /** Users (upn or object id) with FullAccess. */
  fullAccess: z.array(z.string()).optional(),
  /** Users (upn or object id) with Send As: they may send from its address. */
  sendAs: z.array(z.string()).optional(),
});
export const grantConsentInput = z.object({
  clientId: z.string().min(1),
  /** Delegated permissions, e.g. https://graph.microsoft.com/Mail.Send; omitted = what the app declares. */
  delegated: z.array(z.string()).optional(),
  /** App roles, e.g. https://outlook.office365.com/IMAP.AccessAsApp; omitted = what the app declares. */
  appRoles: z.array(z.string()).optional(),
  /** A user (upn or id) to grant the delegated permissions to, instead of everyone. */
  user: z.string().optional(),
});
export const createAppInput = z.object({
  clientId: guid.optional(),
  displayName: z.string().min(1),
  redirectUris: z.array(z.url()).optional(),
  publicClient: z.boolean().optional(),
  homeTenantId: guid.optional(),
  delegatedPermissions: z.array(z.string()).optional(),
  appRoles: z.array(z.string()).optional(),
});
export const addSecretInput = z.object({ displayName: z.string().optional(), value: z.string().min(16).optional(), expiresAt: when.optional() });
export const addCertificateInput = z.object({
  displayName: z.string().optional(),
  certificatePem: z.string().includes('BEGIN CERTIFICATE'),
  /** When the credential ends, if before the certificate's notAfter (the default). */
  expiresAt: when.optional(),
});
export const addFederatedCredentialInput = z
  .object({
    name: z.string().min(1),
    issuer: z.string().min(1),
    subject: z.string().min(1),
    audiences: z.array(z.string().min(1)).optional(),
    jwks: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }).optional(),
    publicKeyPem: z.string().includes('BEGIN PUBLIC KEY').optional(),
  })
  .refine((v) => (v.jwks === undefined) !== (v.publicKeyPem === undefined), 'give exactly one of jwks and publicKeyPem');
/** How long a fault lasts: `count` requests, `forSeconds` of the sandbox clock, or whichever runs out first. */
const faultWindow = {
  count: z.number().int().min(0).optional(),
  forSeconds: z.number().min(0).optional(),
  retryAfterSeconds: z.number().int().min(0).optional(),
};
const hasAnEnd = (fault: { count?: number; forSeconds?: number }) => fault.count !== undefined || fault.forSeconds !== undefined;
export const tokenFaultInput = z.object({ status: z.union([z.literal(429), z.literal(503)]), ...faultWindow }).refine(hasAnEnd, 'give count, forSeconds or both');
export const graphFaultInput = z.object({ status: z.union([z.literal(429), z.literal(500), z.literal(503)]), ...faultWindow }).refine(hasAnEnd, 'give count, forSeconds or both');

/** The sandbox Graph's receiving side: mail put into a mailbox as if delivered, stale delta tokens, notification delivery. */
const RECEIVED_FOLDERS = ['inbox', 'junkemail', 'archive', 'deleteditems', 'drafts', 'sentitems'] as const;
const mailAddress = z.union([z.email(), z.object({ name: z.string().optional(), address: z.email() })]);
export const injectMessageInput = z
  .object({
    /** The folder it lands in (default inbox). */
    folder: z.enum(RECEIVED_FOLDERS).optional(),
    /** The whole message as base64 of RFC 5322 (as Graph's MIME format); the fields below then stay unset. */
    mime: z.string().min(1).optional(),
    from: mailAddress.optional(),
    /** Default: the mailbox itself. */
    to: z.array(mailAddress).optional(),
    cc: z.array(mailAddress).optional(),
    subject: z.string().optional(),
    text: z.string().optional(),
    html: z.string().optional(),
    /** `<…@…>`; one is made up without it (and without a Message-ID in `mime`). */
    internetMessageId: z.string().regex(/^<[^<>\s]+@[^<>\s]+>$/, 'must look like <local@host>').optional(),
    /** Kept as internetMessageHeaders (X- headers, In-Reply-To, References). */
    headers: z.array(z.object({ name: z.string().min(1), value: z.string() })).optional(),
    attachments: z
      .array(z.object({ name: z.string().min(1), contentType: z.string().min(1).optional(), contentBase64: z.string(), isInline: z.boolean().optional(), contentId: z.string().min(1).optional() }))
      .optional(),
    /** When it arrived (default now, on the sandbox clock). */
    receivedDateTime: when.optional(),
    isRead: z.boolean().optional(),
  })
  .refine(
    (v) => v.mime === undefined || [v.from, v.to, v.cc, v.subject, v.text, v.html, v.internetMessageId, v.headers, v.attachments].every((f) => f === undefined),
    'give either mime or the message fields, not both',
  );
export const moveMessageInput = z.object({ folder: z.enum(RECEIVED_FOLDERS) });
export const lifecycleEventInput = z.object({ lifecycleEvent: z.enum(['reauthorizationRequired', 'subscriptionRemoved', 'missed']) });
export const dropNotificationsInput = z
  .object({ subscriptionId: z.string().min(1).optional(), address: z.email().optional(), count: z.number().int().min(0) })
  .refine((v) => (v.subscriptionId === undefined) !== (v.address === undefined), 'give exactly one of subscriptionId and address');
export const notificationDeliveryInput = z.object({
  retryDelaysMs: z.array(z.number().int().min(0)).optional(),
  timeoutMs: z.number().int().positive().optional(),
  validationTimeoutMs: z.number().int().positive().optional(),
  batchDelayMs: z.number().int().min(0).optional(),
});

export type CreateTenantInput = z.input<typeof createTenantInput>;
export type TenantPoliciesInput = z.input<typeof tenantPoliciesInput>;
export type CreateUserInput = z.input<typeof createUserInput>;
export type RevokeSessionsInput = z.input<typeof revokeSessionsInput>;
export type CreateMailboxInput = z.input<typeof createMailboxInput>;
export type GrantConsentInput = z.input<typeof grantConsentInput>;
export type CreateAppInput = z.input<typeof createAppInput>;
export type AddSecretInput = z.input<typeof addSecretInput>;
export type AddCertificateInput = z.input<typeof addCertificateInput>;
export type AddFederatedCredentialInput = z.input<typeof addFederatedCredentialInput>;
export type TokenFaultInput = z.input<typeof tokenFaultInput>;
export type GraphFaultInput = z.input<typeof graphFaultInput>;
export type InjectMessageInput = z.input<typeof injectMessageInput>;
export type MoveMessageInput = z.input<typeof moveMessageInput>;
export type LifecycleEventInput = z.input<typeof lifecycleEventInput>;
export type DropNotificationsInput = z.input<typeof dropNotificationsInput>;
export type NotificationDeliveryInput = z.input<typeof notificationDeliveryInput>;

/** A user as the control API shows it: whether they have a password, not its hash. */
export interface UserView extends Omit<User, 'passwordHash'> {
  hasPassword: boolean;
}
/** An app registration as the control API shows it: secret values only at creation. */
export interface AppView extends Omit<AppRegistration, 'secrets'> {
  secrets: Omit<ClientSecret, 'value'>[];
}
export interface AddedSecret {
  keyId: string;
  /** The secret, shown once, as in the portal. */
  value: string;
  hint: string;
  startDateTime: number;
  endDateTime: number;
}
export interface AddedCertificate {
  keyId: string;
  thumbprintSha1: string;
  thumbprintSha256: string;
  startDateTime: number;
  endDateTime: number;
}
export interface MailboxView extends Omit<Mailbox, 'fullAccess' | 'sendAs'> {
  /** User principal names. */
  fullAccess: string[];
  /** User principal names. */
  sendAs: string[];
}
export interface ConsentView {
  clientId: string;
  servicePrincipalId: string;
  delegated: { resource: string; principal: string; scopes: string[] }[];
  appRoles: { resource: string; roles: string[] }[];
}
export interface IssuedView {
  codes: { clientId: string; user: string; scope: string; issuedAt: number; expiresAt: number; redeemedAt?: number }[];
  refreshTokens: { clientId: string; user: string; issuedAt: number; lastRedeemedAt?: number; publicClient?: boolean }[];
  deviceCodes: { clientId: string; userCode: string; status: string; user?: string }[];
}
