import type { FastifyInstance } from 'fastify';

/**
 * Replaces fastify's `application/json` body parser with one whose error for a malformed body says what
 * the JSON parser found (fastify's says only "Body is not valid JSON"): `body is not valid JSON: Expected
 * ',' or ']' after array element in JSON at position 14 (line 1 column 15)`. Parsing stays fastify's
 * default (secure-json-parse, refusing `__proto__` and `constructor.prototype` keys); the reason is looked
 * up only for a body it refused. The error keeps fastify's code, so the app's error handler adds the fix.
 *
 * @example
 * const app = Fastify({ bodyLimit });
 * useJsonBodyParser(app);
 */
export function useJsonBodyParser(app: FastifyInstance): void {
  const parse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) =>
    parse(req, body as string, (error: Error | null, value?: unknown) => {
      if ((error as { code?: string } | null)?.code !== 'FST_ERR_CTP_INVALID_JSON_BODY') done(error, value);
      else
        done(
          Object.assign(new Error(`body is not valid JSON: ${jsonProblem(body as string)}`), {
            code: 'FST_ERR_CTP_INVALID_JSON_BODY',
            statusCode: 400,
          }),
          undefined,
        );
    }),
  );
}

/** Why `text` was refused: the JSON parser's message, or the forbidden key secure-json-parse found. */
function jsonProblem(text: string): string {
  try {
    JSON.parse(text);
  } catch (cause) {
    return (cause as Error).message;
  }
  return 'it has a "__proto__" or "constructor": {"prototype": …} key, which the server refuses';
}
