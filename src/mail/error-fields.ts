/** Reading the fields mail and HTTP clients hang on their errors (code, response, cause) without trusting their types. */

export type ErrorFields = Record<string, unknown>;

export function errorFields(error: unknown): ErrorFields {
  return typeof error === 'object' && error !== null ? (error as ErrorFields) : {};
}

/** The code of what kept fetch from getting an answer: undici puts Node's error under `cause`. */
export function fetchErrorCode(error: unknown): string | undefined {
  if (error instanceof Error && (error.name === 'TimeoutError' || error.name === 'AbortError')) return 'TimeoutError';
  const cause = errorFields(errorFields(error).cause);
  const code = typeof cause.code === 'string' ? cause.code : errorFields(error).code;
  return typeof code === 'string' ? code : undefined;
}
