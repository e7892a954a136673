import type { FoundMessage, MessageSink } from '../../src/mail/mail-receiver.js';

export interface KeptMessage {
  fingerprint: string;
  folder: string;
  size?: number;
  raw: string;
}

/** A sink that keeps what it is handed, downloading each message, and drops what it has seen before, as the real one does. */
export function keepingSink(): { sink: MessageSink; kept: KeptMessage[] } {
  const kept: KeptMessage[] = [];
  const sink = async (message: FoundMessage) => {
    if (kept.some((known) => known.fingerprint === message.fingerprint)) return;
    kept.push({ fingerprint: message.fingerprint, folder: message.folder, ...(message.size !== undefined && { size: message.size }), raw: (await message.raw()).toString('latin1') });
  };
  return { sink, kept };
}
