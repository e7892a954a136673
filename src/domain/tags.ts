import { z } from 'zod';

/**
 * Tags: the vendor's own labels on connections (its account id, plan, region…), returned on every
 * read and in every event. Small and flat so they fit in one Table Storage property.
 */

export const MAX_TAGS = 20;

export const tagsSchema = z
  .record(
    z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'tag names are 1-64 letters, digits and _ . : -'),
    z.string().max(256, 'tag values are at most 256 characters'),
  )
  .refine((tags) => Object.keys(tags).length <= MAX_TAGS, `at most ${MAX_TAGS} tags`)
  .meta({ description: 'Your own labels, returned on every read and in every event.', example: { account: 'A-1042', plan: 'pro' } });

export type Tags = z.infer<typeof tagsSchema>;

/** A JSON merge-patch of tags: a string sets a tag, null removes it. */
export const tagsPatchSchema = z
  .record(
    z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/, 'tag names are 1-64 letters, digits and _ . : -'),
    z.string().max(256, 'tag values are at most 256 characters').nullable(),
  )
  .refine((patch) => Object.keys(patch).length <= 2 * MAX_TAGS, `at most ${2 * MAX_TAGS} tag changes at once`);

/**
 * Applies a merge patch. The result is checked like any tags, so a patch can never leave more
 * tags than allowed: the caller gets the issues instead of a stored row that no longer validates.
 */
export function mergeTags(current: Tags, patch: Record<string, string | null>): { tags: Tags } | { issues: z.core.$ZodIssue[] } {
  const next: Tags = { ...current };
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) Reflect.deleteProperty(next, key);
    else next[key] = value;
  }
  const checked = tagsSchema.safeParse(next);
  return checked.success ? { tags: checked.data } : { issues: checked.error.issues };
}
