/**
 * Spells a topic name (e.g. `charges.card_id+merchant_id`) with only letters, digits, `-` and `_`, as NATS
 * stream names and subject tokens and Kafka topic names require. The mapping is injective, so two topics
 * never share a stream: `_` becomes `__`, any other character outside `[A-Za-z0-9-]` becomes `_` and its
 * UTF-16 code unit as 4 hex digits (`.` → `_002e`); `_` followed by neither `_` nor a hex digit (such as
 * `_p` in `<prefix>_<token>_p<partition>`) never occurs inside a token.
 *
 * @example
 * logStreamToken('charges.card_id'); // 'charges_002ecard__id'
 */
export function logStreamToken(topic: string): string {
  if (topic === '') throw new Error('event log topic names must not be empty');
  let out = '';
  for (let i = 0; i < topic.length; i++) {
    const ch = topic[i];
    if (/[A-Za-z0-9-]/.test(ch)) out += ch;
    else if (ch === '_') out += '__';
    else out += `_${topic.charCodeAt(i).toString(16).padStart(4, '0')}`;
  }
  return out;
}
