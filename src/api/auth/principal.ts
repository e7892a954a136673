import type { CustomerScope } from '../../domain/access.js';
import type { Tags } from '../../domain/tags.js';

/** Who is calling, as established by an API key or a signed token. */
export interface Principal {
  customerScope: CustomerScope;
  /** Names the credential in logs: the key prefix, or the token's issuer. */
  credential: string;
  /** Context claims of a signed token; they become tags on what the call creates. */
  contextTags: Tags;
}
