import type { en } from './en.js';

/** A message's name; the English catalog defines which exist. */
export type MessageKey = keyof typeof en;

/** A translation: every message, each with the placeholders of its English text (a test checks those). */
export type Catalog = Readonly<Record<MessageKey, string>>;

/** The placeholder names in a message text: `'{vendor} and {tenant}'` → `'vendor' | 'tenant'`. */
export type Placeholders<Text extends string> = Text extends `${string}{${infer Name}}${infer Rest}` ? Name | Placeholders<Rest> : never;
