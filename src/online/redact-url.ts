/**
 * `text` (a store or log URL, or a comma-separated list of them) as it may appear in a message: error
 * messages reach 503 bodies, /readyz (which needs no token) and logs, so no secret of a URL may. In each
 * `scheme://user:password@` the password becomes `***`, the user name stays (it is no secret, and names
 * the ACL user an error is about); user info without a `:` (`nats://token@host`, NATS' token form) becomes
 * `***` whole. Query parameters that name a secret (`?password=`, `token=`, `pass`, `secret`, `auth`,
 * `key`, ...) keep their name only. Everything else (hosts, ports, database, other options) is kept.
 *
 * @example
 * redactUrl('redis://:s3cret@127.0.0.1:6379/2'); // 'redis://:***@127.0.0.1:6379/2'
 * redactUrl('redis+cluster://reader:pw@10.0.0.1:7000,10.0.0.2:7000'); // 'redis+cluster://reader:***@10.0.0.1:7000,10.0.0.2:7000'
 * redactUrl('nats://tok@n1:4222,nats://u:p@n2:4222'); // 'nats://***@n1:4222,nats://u:***@n2:4222'
 */
export function redactUrl(text: string): string {
  return (
    text
      // The user info runs to the last '@' before the path, query or fragment (a password may hold '@').
      .replace(/(\/\/)([^/?#]*)@/g, (_, slashes: string, info: string) => {
        const colon = info.indexOf(':');
        return `${slashes}${colon < 0 ? '***' : `${info.slice(0, colon)}:***`}@`;
      })
      .replace(/([?&][^=&#]*(?:pass|pwd|token|secret|auth|key|cred)[^=&#]*=)[^&#,]*/gi, '$1***')
  );
}
