/** `{ [name]: value }` when value is defined, `{}` otherwise: optional fields without `undefined` values. */
export function optional<K extends string, V>(name: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({ [name]: value } as Record<K, V>);
}
