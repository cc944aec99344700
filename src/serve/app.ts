import Fastify, {
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type onRequestHookHandler,
} from 'fastify';
import { bearerCheck } from './auth.ts';
import type { FeatureService } from './feature-service.ts';
import { useJsonBodyParser } from './json-body.ts';
import { createServeMetrics, type ServeMetrics } from './metrics.ts';
import { RequestError } from './request-rows.ts';
import type { UnknownColumns } from '../online/validate-event.ts';
import { registerEventRoutes, type IngestFn } from './routes/event-routes.ts';
import { registerFeatureRoutes, serverTiming } from './routes/feature-routes.ts';
import { registerOpsRoutes, type SourceProgress } from './routes/ops-routes.ts';

export interface ServeAppOptions {
  readonly service: FeatureService;
  /** Bearer token required on every route except /healthz and /readyz; unset disables auth. */
  readonly token?: string;
  readonly ingest?: IngestFn;
  /**
   * What ingest does with event fields that are not source columns when a request does not say
   * (`?unknownColumns=`): 'reject' the batch with 400 (default) or 'drop' them.
   */
  readonly ingestUnknownColumns?: UnknownColumns;
  readonly ready?: () => boolean | Promise<boolean>;
  /**
   * Why the node is unready (e.g. a stream worker stuck failing at one offset), or null: /readyz then
   * answers 503 `{"status": "unready", "reason": ...}` whatever `ready` says.
   */
  readonly unready?: () => string | null;
  readonly progress?: () => readonly SourceProgress[] | Promise<readonly SourceProgress[]>;
  readonly beforeScrape?: () => void | Promise<void>;
  readonly metrics?: ServeMetrics;
  /** Clock for freshness gauges (tests pin it). */
  readonly now?: () => number;
  /** Fastify logger (pino); off by default because per-request logs cost more than a fetch. */
  readonly logger?: boolean;
}

/** Largest request body (a batch of events or of fetch rows). */
const BODY_LIMIT = 64 * 1024 * 1024;

const ERROR_KINDS: Readonly<Record<number, string>> = {
  404: 'not_found',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  422: 'idempotency_conflict',
  503: 'unavailable',
};

/**
 * Fastify's own body errors name the problem but not the fix (and "Request body is too large" not even the
 * limit); every other error's message is ours and already says what to change.
 */
function withFix(error: Error & { code?: string }, contentType: string | undefined): string {
  switch (error.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return `request body is over the ${BODY_LIMIT / 1024 / 1024} MiB limit; split it: POST events in several smaller batches (each is accepted whole or not at all)`;
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return `content-type '${contentType ?? ''}' is not supported; send the JSON body with 'content-type: application/json'`;
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return `${error.message}; fix the JSON (e.g. check it with \`jq . < body.json\`)`;
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return `${error.message}; send a JSON body, or drop the header`;
    default:
      return error.message;
  }
}

/** Probe routes stay open so orchestrators can check liveness without the token. */
const OPEN_ROUTES = new Set(['/healthz', '/readyz']);

/**
 * Builds the fastify app serving features, ingest and ops routes (not yet listening).
 *
 * @example
 * const app = createServeApp({ service, token: process.env.TESSERA_TOKEN, ingest });
 * await app.listen({ port: 8080, host: '127.0.0.1' });
 * // curl -H 'authorization: Bearer $TOKEN' 'http://127.0.0.1:8080/v1/features/fraud_model?card_id=c1&merchant_id=m1'
 */
export function createServeApp(opts: ServeAppOptions): FastifyInstance {
  const metrics = opts.metrics ?? createServeMetrics();
  const app = Fastify({ logger: opts.logger ?? false, bodyLimit: BODY_LIMIT });
  // Every body is JSON. Fastify's default text/plain parser handed routes a string, whose error then blamed
  // the body's shape; without it such a request gets the 415 that names the header to send.
  app.removeContentTypeParser('text/plain');
  useJsonBodyParser(app);
  const allowed = bearerCheck(opts.token);
  const authOn = opts.token !== undefined && opts.token !== '';
  /** Answers 401 unless the request carries the token; `route` labels the error metric. */
  const denied = (req: FastifyRequest, reply: FastifyReply, route: string): boolean => {
    if (allowed(req.headers.authorization)) return false;
    metrics.httpErrors.labels(route, '401').inc();
    void reply.code(401).header('www-authenticate', 'Bearer').send({
      error: 'unauthorized',
      message: 'missing or wrong bearer token; send "Authorization: Bearer <token>"',
    });
    return true;
  };
  /** Answers 401 before the body is read unless the request carries the token. */
  const tokenCheck =
    (route: string): onRequestHookHandler =>
    (req, reply, done) => {
      if (!denied(req, reply, route)) done();
    };
  if (authOn) {
    // The check is attached to each route when it is registered (every route but the probes), so a request
    // pays neither a lookup of its route's options (fastify builds that object on each access) nor a
    // promise per hook.
    app.addHook('onRoute', (route) => {
      if (OPEN_ROUTES.has(route.url)) return;
      const own = route.onRequest;
      const check = tokenCheck(route.url);
      route.onRequest = own === undefined ? [check] : [check, ...(Array.isArray(own) ? own : [own])];
    });
    // Unknown paths need the token too (their 404 names the routes), checked before fastify reads the body.
    const unknownRoute = tokenCheck('unknown');
    app.addHook('onRequest', (req, reply, done) => {
      if (req.is404) unknownRoute.call(app, req, reply, done);
      else done();
    });
  }
  app.setErrorHandler(async (error: Error & { statusCode?: number; validation?: unknown }, req, reply) => {
    const route = req.routeOptions.url ?? 'unknown';
    let code = error instanceof RequestError ? error.statusCode : (error.statusCode ?? 500);
    if (code < 400 || code > 599) code = 500;
    metrics.httpErrors.labels(route, String(code)).inc();
    if (code >= 500) {
      // Server faults must be visible even with the per-request logger off (the default).
      if (opts.logger) req.log.error({ err: error }, 'request failed');
      // Unavailable (e.g. the store is down): one line per request, its message names the cause and fix.
      else if (code === 503) process.stderr.write(`tessera: ${req.method} ${route}: ${error.message}\n`);
      else process.stderr.write(`tessera: ${req.method} ${route} failed: ${error.stack ?? error.message}\n`);
    }
    const kind = ERROR_KINDS[code] ?? (code >= 500 ? 'internal' : 'bad_request');
    const issues = error instanceof RequestError ? error.issues : undefined;
    const issueCount = error instanceof RequestError ? error.issueCount : undefined;
    const message = withFix(error, req.headers['content-type']);
    // A failed fetch reports its server time too (e.g. a slow 503 from a store outage).
    const timing = serverTiming(req);
    if (timing !== undefined) void reply.header('server-timing', timing);
    return reply.code(code).send({ error: kind, message, ...(issues ? { issues, issueCount } : {}) });
  });
  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send({
      error: 'not_found',
      message: `no route ${req.method} ${req.url.split('?')[0]}; see /v1/features/:join, /v1/groupbys/:name, /v1/events/:source`,
    }),
  );

  const { repo } = opts.service;
  registerFeatureRoutes(app, opts.service, metrics);
  registerEventRoutes(app, repo.sources, opts.ingest, metrics, opts.ingestUnknownColumns);
  registerOpsRoutes(app, metrics, {
    ready: opts.ready,
    unready: opts.unready,
    progress: opts.progress,
    beforeScrape: opts.beforeScrape,
    groupBys: repo.groupBys,
    now: opts.now,
  });
  app.get('/v1/joins', async () => ({
    joins: repo.joins.map((j) => ({
      name: j.name,
      keys: [...new Set(j.parts.flatMap((p) => Object.values(p.keyMapping)))],
      parts: j.parts.map((p) => ({ groupBy: p.groupBy.name, prefix: p.prefix ?? null })),
    })),
  }));
  return app;
}
