import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { SandboxResponse } from '../identity/http.js';

/**
 * Microsoft Graph's error shape and the errors the sandbox Graph answers with. Every answer, good
 * or bad, carries `request-id` and `client-request-id` headers (the client's own id echoed when it
 * sent one, as Graph does), and errors repeat them with the date in `innerError`. Codes and
 * messages are the ones Graph sends for the same situation; README.md says how sure each one is.
 */

export class GraphError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
    this.name = 'GraphError';
  }
}

export interface RequestIds {
  requestId: string;
  clientRequestId: string;
  /** Milliseconds since the epoch, on the sandbox clock. */
  now: number;
}

export function requestIds(headers: IncomingHttpHeaders, now: number): RequestIds {
  const requestId = randomUUID();
  const sent = headers['client-request-id'];
  const clientRequestId = (Array.isArray(sent) ? sent[0] : sent) ?? requestId;
  return { requestId, clientRequestId, now };
}

function idHeaders(ids: RequestIds): Record<string, string> {
  return { 'request-id': ids.requestId, 'client-request-id': ids.clientRequestId, 'Cache-Control': 'no-cache' };
}

/** What Graph puts in Content-Type for an OData answer. */
const ODATA_JSON = 'application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8';

export function graphResponse(status: number, body: unknown, ids: RequestIds, headers: Readonly<Record<string, string>> = {}): SandboxResponse {
  if (body === undefined) return { status, headers: { ...idHeaders(ids), ...headers }, body: '' };
  return { status, headers: { 'Content-Type': ODATA_JSON, ...idHeaders(ids), ...headers }, body: JSON.stringify(body) };
}

/** innerError's date: UTC, to the second, without a zone letter ("2024-03-08T10:22:05"). */
export function innerErrorDate(now: number): string {
  return new Date(now).toISOString().slice(0, 19);
}

export function errorResponse(error: GraphError, ids: RequestIds, headers: Readonly<Record<string, string>> = {}): SandboxResponse {
  const body = {
    error: {
      code: error.code,
      message: error.message,
      innerError: { date: innerErrorDate(ids.now), 'request-id': ids.requestId, 'client-request-id': ids.clientRequestId },
    },
  };
  return { status: error.status, headers: { 'Content-Type': 'application/json', ...idHeaders(ids), ...error.headers, ...headers }, body: JSON.stringify(body) };
}

/** .NET's names of the statuses a wrapped Outlook error may carry. */
const STATUS_NAMES: Readonly<Record<number, string>> = { 400: 'BadRequest', 403: 'Forbidden', 404: 'NotFound' };

const invalidToken = (message: string) => new GraphError(401, 'InvalidAuthenticationToken', message);

/** Every error the sandbox Graph raises, by what happened. */
export const graphErrors = {
  tokenEmpty: () => invalidToken('Access token is empty.'),
  tokenNotAJwt: () => invalidToken('CompactToken parsing failed with error code: 80049217'),
  tokenInvalid: (reason?: string) => invalidToken(reason === undefined ? 'Access token validation failure.' : `Access token validation failure. ${reason}`),
  tokenExpired: () => invalidToken('Lifetime validation failed, the token is expired.'),
  tokenNotYetValid: () => invalidToken('Access token has expired or is not yet valid.'),

  meNeedsUser: () => new GraphError(400, 'BadRequest', '/me request is only valid with delegated authentication flow.'),
  insufficientPrivileges: () => new GraphError(403, 'Authorization_RequestDenied', 'Insufficient privileges to complete the operation.'),
  resourceNotFound: (name: string) =>
    new GraphError(404, 'Request_ResourceNotFound', `Resource '${name}' does not exist or one of its queried reference-property objects are not present.`),
  unsupportedFilter: (property: string, resource: string) =>
    new GraphError(400, 'Request_UnsupportedQuery', `Unsupported or invalid query filter clause specified for property '${property}' of resource '${resource}'.`),
  directoryPropertyUnknown: (property: string, type: string) =>
    new GraphError(400, 'BadRequest', `Parsing OData Select and Expand failed: Could not find a property named '${property}' on type 'microsoft.graph.${type}'.`),

  mailAccessDenied: () => new GraphError(403, 'ErrorAccessDenied', 'Access is denied. Check credentials and try again.'),
  invalidUser: (name: string) => new GraphError(404, 'ErrorInvalidUser', `The requested user '${name}' is invalid.`),
  mailboxNotEnabled: () => new GraphError(404, 'MailboxNotEnabledForRESTAPI', 'The mailbox is either inactive, soft-deleted, or is hosted on-premise.'),
  idMalformed: () => new GraphError(400, 'ErrorInvalidIdMalformed', 'Id is malformed.'),
  itemNotFound: () => new GraphError(404, 'ErrorItemNotFound', 'The specified object was not found in the store.'),
  outlookPropertyUnknown: (property: string, type: string) =>
    new GraphError(400, 'RequestBroker--ParseUri', `Could not find a property named '${property}' on type 'Microsoft.OutlookServices.${type}'.`),

  requestTooLarge: () => new GraphError(413, 'RequestEntityTooLarge', 'The maximum request length supported is 4MB.'),
  emptyPayload: () => new GraphError(400, 'BadRequest', 'Empty Payload. JSON content expected.'),
  unreadableJson: () => new GraphError(400, 'BadRequest', 'Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.'),
  unknownBodyProperty: (property: string, type: string) =>
    new GraphError(400, 'RequestBodyRead', `The property '${property}' does not exist on type 'Microsoft.OutlookServices.${type}'. Make sure to only use property names that are defined by the type or mark the type as open type.`),
  bodyValueInvalid: (value: string, type: string) => new GraphError(400, 'RequestBodyRead', `Cannot convert the literal '${value}' to the expected type '${type}'.`),
  abstractAttachment: () => new GraphError(400, 'RequestBodyRead', 'Cannot create an abstract class.'),
  unknownParameter: (parameter: string, operation: string) =>
    new GraphError(400, 'RequestBodyRead', `The parameter '${parameter}' in the request payload is not a valid parameter for the operation '${operation}'.`),
  notModelled: (what: string) => new GraphError(501, 'NotImplemented', `The sandbox Graph does not model ${what}; see local/sandbox/graph/README.md.`),
  badQueryOption: (option: string, value: string) => new GraphError(400, 'BadRequest', `Invalid value '${value}' for query option '${option}'.`),
  unsupportedMessageFilter: () => new GraphError(400, 'ErrorInvalidUrlQueryFilter', 'The query filter contains one or more invalid nodes.'),

  noRecipients: () => new GraphError(400, 'ErrorInvalidRecipients', "At least one recipient is not valid., A message can't be sent because it contains no recipients."),
  recipientNotResolved: (address: string) =>
    new GraphError(400, 'ErrorInvalidRecipients', `At least one recipient is not valid., Recipient '${address}' is not resolved. All recipients must be resolved before a message can be submitted.`),
  headerNameNotCustom: (name: string) => new GraphError(400, 'InvalidInternetMessageHeader', `The internet message header name '${name}' should start with 'x-' or 'X-'.`),
  tooManyHeaders: () => new GraphError(400, 'InvalidInternetMessageHeaderCollection', 'Maximum number of headers in one message should be less than or equal to 5.'),
  emptyHeaders: () => new GraphError(400, 'InvalidInternetMessageHeaderCollection', 'The internet message header collection should contain at least one header.'),
  sendAsDenied: () =>
    new GraphError(403, 'ErrorSendAsDenied', 'The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.'),
  notADraft: () => new GraphError(400, 'ErrorInvalidOperation', 'The item is not a draft and cannot be changed or sent.'),
  mimeNotBase64: () => new GraphError(400, 'ErrorMimeContentInvalidBase64String', 'Invalid base64 string for MIME content.'),
  mimeInvalid: () => new GraphError(400, 'ErrorMimeContentInvalid', 'Invalid MIME content.'),

  attachmentBelowMinimum: () => new GraphError(400, 'ErrorAttachmentSizeShouldNotBeLessThanMinimumSize', 'Attachment size must be greater than the minimum size.'),
  attachmentOverMaximum: () => new GraphError(400, 'ErrorMessageSizeExceeded', 'The message exceeds the maximum supported size.'),
  uploadAudience: (audience: string, origin: string) =>
    new GraphError(401, 'InvalidAudienceForResource', `The audience claim value is invalid for current resource. Audience claim is '${audience}', request url is '${origin}' and resource type is 'Exchange'.`),
  uploadSessionUnknown: () => new GraphError(404, 'ErrorItemNotFound', 'The upload session was not found or has already completed.'),
  contentRangeInvalid: () => new GraphError(400, 'ErrorInvalidRequest', "The Content-Range header must be 'bytes {start}-{end}/{total}' with the attachment's size as the total and as many bytes in the body as it names."),
  rangeNotExpected: (next: number) => new GraphError(416, 'ErrorInvalidRequest', `The byte range must start at ${next}, the next byte the upload session expects.`),

  changeTrackingUnsupported: () => new GraphError(400, 'BadRequest', "Unsupported request: Change tracking is not supported against 'microsoft.graph.message'."),
  syncStateInvalid: () => new GraphError(400, 'ErrorInvalidSyncStateData', 'The sync state data is corrupt or otherwise invalid.'),
  /** A forgotten delta token: 410 with where a new initial round starts. */
  syncStateNotFound: (location: string, generation: number, highest: number) =>
    new GraphError(410, 'SyncStateNotFound', `The sync state generation is not found; generation=${String(generation)};[highest=${String(highest)}].`, { Location: location }),

  subscriptionNotFound: () => new GraphError(404, 'ResourceNotFound', 'The object was not found.'),
  subscriptionPayloadInvalid: () => new GraphError(400, 'InvalidRequest', 'Could not process subscription creation payload. Are all property names spelled and camelCased properly?'),
  subscriptionPropertyRequired: (property: string) => new GraphError(400, 'InvalidRequest', `${property} is a required property for subscription creation.`),
  subscriptionUpdateEmpty: () => new GraphError(400, 'InvalidRequest', "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' property and its value."),
  subscriptionPropertyInvalid: (property: string) => new GraphError(400, 'ValidationError', `Invalid property value for ${property}`),
  notificationUrlScheme: (property: string, scheme: string) => new GraphError(400, 'InvalidRequest', `${property} scheme='${scheme}' is not supported.`),
  notificationUrlInvalid: (url: string) => new GraphError(400, 'InvalidRequest', `Invalid notification url='${url}'.`),
  subscriptionExpirationTooFar: (maxMinutes: number) => new GraphError(400, 'ExtensionError', `Subscription expiration can only be ${String(maxMinutes)} minutes in the future.`),
  subscriptionExpirationPast: () => new GraphError(400, 'ExtensionError', 'Subscription expiration must be in the future.'),
  subscriptionValidationFailed: () =>
    new GraphError(400, 'ValidationError', 'Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.'),
  subscriptionValidationMismatch: () => new GraphError(400, 'ValidationError', 'Subscription validation request failed. Response must exactly match validationToken query parameter.'),
  subscriptionValidationTimedOut: () => new GraphError(400, 'ValidationError', 'Subscription validation request timed out.'),
  /** Outlook's refusals reach a subscription call wrapped as Graph's change notification service words them. */
  subscriptionExtension: (status: number, operation: 'Create' | 'Update' | 'Reauthorize', reason: string) =>
    new GraphError(status, 'ExtensionError', `Operation: ${operation}; Exception: [Status Code: ${STATUS_NAMES[status] ?? String(status)}; Reason: ${reason}]`),

  mailboxConcurrency: (retryAfterSeconds: number) =>
    new GraphError(429, 'ApplicationThrottled', 'Application is over its MailboxConcurrency limit.', { 'Retry-After': String(retryAfterSeconds) }),
  messageRate: (retryAfterSeconds: number) => new GraphError(429, 'ApplicationThrottled', 'Application is over its MessageRate limit.', { 'Retry-After': String(retryAfterSeconds) }),

  invalidVersion: (version: string) => new GraphError(400, 'BadRequest', `Invalid version: ${version}`),
  segmentNotFound: (segment: string) => new GraphError(400, 'BadRequest', `Resource not found for the segment '${segment}'.`),
  methodNotAllowed: (method: string) => new GraphError(405, 'BadRequest', `The HTTP method '${method}' is not allowed for this resource.`),
  badUri: () => new GraphError(400, 'BadRequest', 'The request URI is not valid.'),

  throttled: (headers: Record<string, string>) => new GraphError(429, 'TooManyRequests', 'Please retry again later.', headers),
  unavailable: (headers: Record<string, string>) => new GraphError(503, 'serviceNotAvailable', 'Service unavailable', headers),
  internal: (headers: Record<string, string>) => new GraphError(500, 'generalException', 'General exception while processing.', headers),
};
