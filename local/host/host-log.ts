/** How the local host reports on itself (not the functions' own logs). */
export type HostLog = (level: 'debug' | 'info' | 'warn' | 'error', message: string, error?: unknown) => void;
