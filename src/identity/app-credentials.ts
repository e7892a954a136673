import type { TokenCredential } from '@azure/identity';
import type { NodeAuthOptions } from '@azure/msal-node';
import { z } from 'zod';
import type { AppRegistrationConfig } from '../config.js';
import type { SecretStore } from '../secrets/secret-store.js';

/**
 * How the vendor's app proves itself to Microsoft, in msal-node's terms: a client secret, a
 * certificate (msal signs a client assertion with its private key), or — with no secret anywhere —
 * a token of the user-assigned managed identity that the app registration trusts as a federated
 * credential, handed to msal as the client assertion.
 */

export type AppCredential = Pick<NodeAuthOptions, 'clientSecret' | 'clientCertificate' | 'clientAssertion'>;

const certificateSchema = z.object({
  privateKeyPem: z.string().min(1),
  /** Hex SHA-256 thumbprint of the certificate registered on the app. */
  thumbprintSha256: z.string().regex(/^[0-9a-fA-F]{64}$/),
  /** The certificate chain, to send as x5c (subject name + issuer authentication); optional. */
  x5c: z.string().optional(),
});

export class AppCredentialError extends Error {}

export async function loadAppCredential(
  app: AppRegistrationConfig,
  secrets: Pick<SecretStore, 'get'>,
  managedIdentity: (clientId: string | undefined) => TokenCredential,
): Promise<AppCredential> {
  const credential = app.credential;
  if (credential.kind === 'secret') {
    const secret = await secrets.get(credential.secretName);
    if (!secret) {
      throw new AppCredentialError(
        `The client secret of app ${app.clientId} is not in the secret store under "${credential.secretName}"; store it there (ENTRA_CLIENT_SECRET_NAME names it).`,
      );
    }
    return { clientSecret: secret.value };
  }
  if (credential.kind === 'certificate') {
    const secret = await secrets.get(credential.secretName);
    const parsed = secret ? certificateSchema.safeParse(parseJsonQuietly(secret.value)) : undefined;
    if (!parsed?.success) {
      throw new AppCredentialError(
        `The certificate of app ${app.clientId} is not in the secret store under "${credential.secretName}" as {privateKeyPem, thumbprintSha256}.`,
      );
    }
    return {
      clientCertificate: {
        privateKey: parsed.data.privateKeyPem,
        thumbprintSha256: parsed.data.thumbprintSha256.toLowerCase(),
        ...(parsed.data.x5c !== undefined && { x5c: parsed.data.x5c }),
      },
    };
  }
  const identity = managedIdentity(credential.clientId);
  const scope = `${app.cloud.federatedCredentialAudience}/.default`;
  return {
    // msal calls this whenever it needs a fresh assertion; the managed identity caches its tokens.
    clientAssertion: async () => {
      const token = await identity.getToken(scope);
      if (!token) throw new AppCredentialError(`The managed identity gave no token for ${scope}.`);
      return token.token;
    },
  };
}

/** JSON.parse's message quotes the input, which here is a private key: drop it. */
function parseJsonQuietly(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
