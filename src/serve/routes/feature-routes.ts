import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  onRequestHookHandler,
  preHandlerHookHandler,
} from 'fastify';
import type { JoinRows } from '../assemble.ts';
import type { FeatureService } from '../feature-service.ts';
import { joinRowJson, jsonBytes } from '../feature-json.ts';
import type { ServeMetrics } from '../metrics.ts';
import { parseFeaturesBody, parseMultiFeaturesBody } from '../request-schema.ts';
import { queryRow, RequestError } from '../request-rows.ts';

/**
 * `{"<label>":<name>,"at":<at>,"rows":[…]}`, or for a single row `{"<label>":…,"at":…,"features":…,"status":…}`,
 * as UTF-8: the same bytes fastify's JSON.stringify would send, built by feature-json.ts (wide rows
 * serialize slowly). A buffer is sent as is, while for a string fastify measures it (`Buffer.byteLength`)
 * and then encodes it.
 */
function rowsBody(
  label: 'join' | 'groupBy',
  name: string,
  at: number,
  rows: JoinRows,
  single: boolean,
): Buffer {
  const head = `{"${label}":${JSON.stringify(name)},"at":${at},`;
  if (single) return Buffer.from(head + joinRowJson(rows, 0).slice(1), 'utf8');
  return jsonBytes((out) =>
    out
      .put(head + '"rows":')
      .rows(rows)
      .put('}'),
  );
}

declare module 'fastify' {
  interface FastifyRequest {
    /** `performance.now()` when a feature request reached fastify (its onRequest hook); 0 on other routes. */
    receivedAt: number;
    /** `performance.now()` when its handler was about to run, body read and parsed (preHandler); 0 before. */
    handledAt: number;
  }
}

/**
 * Stamps a feature request on arrival, and again once its body is read and parsed. Fastify keeps no start
 * time of its own unless its logger is on (off by default), so the feature routes take them in route-level
 * hooks: other routes pay nothing.
 */
const stampArrival: onRequestHookHandler = (req, _reply, done) => {
  req.receivedAt = performance.now();
  done();
};
const stampHandler: preHandlerHookHandler = (req, _reply, done) => {
  req.handledAt = performance.now();
  done();
};

/**
 * Feature responses carry `Server-Timing: fetch;dur=0.412, recv;dur=0.031` (ms): `fetch` from the handler's
 * start to the response body being ready (what `tessera_fetch_seconds` observes), `recv` from arrival to the
 * handler's start (reading and parsing the body: a slow client's upload shows here, not in `fetch`). A
 * request that fails before its handler runs has `recv` only. Always on: it is cheap, and it lets a client
 * (a benchmark, browser devtools) tell the server's time from what its network, event loop or load generator
 * added. Time a request waited before fastify read it (e.g. behind a busy event loop) is in neither, so
 * their sum is a lower bound on what a client sees. With a token set, the arrival stamp follows the token
 * check (app.ts puts it first on each route; microseconds).
 */
const timing = (now: number, req: FastifyRequest): string =>
  req.handledAt === 0
    ? `recv;dur=${(now - req.receivedAt).toFixed(3)}`
    : `fetch;dur=${(now - req.handledAt).toFixed(3)}, recv;dur=${(req.handledAt - req.receivedAt).toFixed(3)}`;

/** The `Server-Timing` value of a feature request as of now, or undefined for a request not stamped. */
export const serverTiming = (req: FastifyRequest): string | undefined =>
  req.receivedAt === 0 ? undefined : timing(performance.now(), req);

/**
 * Feature routes:
 * - `POST /v1/features/:join` `{ rows: [...], at? }` → `{ join, at, rows: [{ features, status }] }`,
 *   or `{ keys: {...}, at? }` → `{ join, at, features, status }`;
 * - `GET /v1/features/:join?card_id=c1&at=...` → the single-row shape;
 * - `POST /v1/features` `{ joins: [...], rows: [...], at? }` → `{ at, joins: { name: [{ features, status }] } }`;
 * - `GET|POST /v1/groupbys/:name` → the same shapes as a join, for one group-by's features.
 * Latency is observed, from the handler's start, once the response body is built; it goes out in a
 * `Server-Timing` header with the time spent receiving the request (errors carry it too, see app.ts).
 */
export function registerFeatureRoutes(
  app: FastifyInstance,
  service: FeatureService,
  metrics: ServeMetrics,
): void {
  // prom-client hashes the label set on every `labels()` call; labels are join and group-by names (bounded
  // by the repo, or 'multi'), so their children are looked up once.
  const children = new Map<
    string,
    { seconds: { observe(v: number): void }; rows: { inc(v: number): void } }
  >();
  /** Observes the fetch (latency from arrival, rows) and sends `body` with its Server-Timing header. */
  const send = (req: FastifyRequest, reply: FastifyReply, label: string, rows: number, body: Buffer) => {
    let child = children.get(label);
    if (child === undefined) {
      child = { seconds: metrics.fetchSeconds.labels(label), rows: metrics.fetchRows.labels(label) };
      children.set(label, child);
    }
    const now = performance.now();
    child.seconds.observe((now - req.handledAt) / 1000);
    child.rows.inc(rows);
    return reply.header('server-timing', timing(now, req)).type('application/json; charset=utf-8').send(body);
  };
  app.decorateRequest('receivedAt', 0);
  app.decorateRequest('handledAt', 0);
  const opts = { onRequest: stampArrival, preHandler: stampHandler };

  app.post<{ Params: { join: string } }>('/v1/features/:join', opts, async (req, reply) => {
    const join = service.join(req.params.join).name;
    const body = parseFeaturesBody(req.body);
    if (!body.ok) throw new RequestError(`invalid request body for join '${join}': ${body.message}`);
    const { at, joins } = await service.fetchJoinRows([join], body.value.rows, body.value.at);
    const rows = joins[0]!;
    const json = rowsBody('join', join, at, rows, body.value.single);
    return send(req, reply, join, rows.length, json);
  });

  app.get<{ Params: { join: string } }>('/v1/features/:join', opts, async (req, reply) => {
    const join = service.join(req.params.join).name;
    const { row, at: atInput } = queryRow(req.query, req.url);
    const { at, joins } = await service.fetchJoinRows([join], [row], atInput, { fromQuery: true });
    const json = rowsBody('join', join, at, joins[0]!, true);
    return send(req, reply, join, 1, json);
  });

  app.post('/v1/features', opts, async (req, reply) => {
    const parsed = parseMultiFeaturesBody(req.body);
    if (!parsed.ok) throw new RequestError(`invalid request body: ${parsed.message}`);
    const result = await service.fetchJoinRows(parsed.value.joins, parsed.value.rows, parsed.value.at);
    const json = jsonBytes((out) => {
      out.put(`{"at":${result.at},"joins":{`);
      result.joins.forEach((rows, j) =>
        out.put(`${j === 0 ? '' : ','}${JSON.stringify(rows.join.name)}:`).rows(rows),
      );
      out.put('}}');
    });
    return send(req, reply, 'multi', parsed.value.rows.length, json);
  });

  app.post<{ Params: { name: string } }>('/v1/groupbys/:name', opts, async (req, reply) => {
    const name = service.groupBy(req.params.name).name;
    const body = parseFeaturesBody(req.body);
    if (!body.ok) throw new RequestError(`invalid request body for group-by '${name}': ${body.message}`);
    const { at, rows } = await service.fetchGroupByRows(name, body.value.rows, body.value.at);
    const json = rowsBody('groupBy', name, at, rows, body.value.single);
    return send(req, reply, `groupby:${name}`, rows.length, json);
  });

  app.get<{ Params: { name: string } }>('/v1/groupbys/:name', opts, async (req, reply) => {
    const name = service.groupBy(req.params.name).name;
    const { row, at: atInput } = queryRow(req.query, req.url);
    const { at, rows } = await service.fetchGroupByRows(name, [row], atInput, { fromQuery: true });
    const json = rowsBody('groupBy', name, at, rows, true);
    return send(req, reply, `groupby:${name}`, 1, json);
  });
}
