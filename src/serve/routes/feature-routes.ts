import type { FastifyInstance, FastifyReply } from 'fastify';
import type { JoinRows } from '../assemble.ts';
import type { FeatureService } from '../feature-service.ts';
import { joinRowJson, jsonBytes } from '../feature-json.ts';
import type { ServeMetrics } from '../metrics.ts';
import { multiFeaturesBody, parseFeaturesBody, describeIssues } from '../request-schema.ts';
import { RequestError } from '../request-rows.ts';

/** Splits a query string into key columns and `at`. */
function queryRow(query: unknown): { row: Record<string, unknown>; at: unknown } {
  const { at, ...row } = (query ?? {}) as Record<string, unknown>;
  for (const [k, v] of Object.entries(row)) {
    if (Array.isArray(v))
      throw new RequestError(`query parameter '${k}' is repeated; send one value per column`);
  }
  return { row, at };
}

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

const sendJson = (reply: FastifyReply, body: Buffer): FastifyReply =>
  reply.type('application/json; charset=utf-8').send(body);

/**
 * Feature routes:
 * - `POST /v1/features/:join` `{ rows: [...], at? }` → `{ join, at, rows: [{ features, status }] }`,
 *   or `{ keys: {...}, at? }` → `{ join, at, features, status }`;
 * - `GET /v1/features/:join?card_id=c1&at=...` → the single-row shape;
 * - `POST /v1/features` `{ joins: [...], rows: [...], at? }` → `{ at, joins: { name: [{ features, status }] } }`;
 * - `GET|POST /v1/groupbys/:name` → the same shapes as a join, for one group-by's features.
 * Latency is observed once the response body is built.
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
  const observe = (label: string, started: number, rows: number) => {
    let child = children.get(label);
    if (child === undefined) {
      child = { seconds: metrics.fetchSeconds.labels(label), rows: metrics.fetchRows.labels(label) };
      children.set(label, child);
    }
    child.seconds.observe((performance.now() - started) / 1000);
    child.rows.inc(rows);
  };

  app.post<{ Params: { join: string } }>('/v1/features/:join', async (req, reply) => {
    const started = performance.now();
    const join = service.join(req.params.join).name;
    const body = parseFeaturesBody(req.body);
    if (!body.ok) throw new RequestError(`invalid request body for join '${join}': ${body.message}`);
    const { at, joins } = await service.fetchJoinRows([join], body.value.rows, body.value.at);
    const rows = joins[0]!;
    const json = rowsBody('join', join, at, rows, body.value.single);
    observe(join, started, rows.length);
    return sendJson(reply, json);
  });

  app.get<{ Params: { join: string } }>('/v1/features/:join', async (req, reply) => {
    const started = performance.now();
    const join = service.join(req.params.join).name;
    const { row, at: atInput } = queryRow(req.query);
    const { at, joins } = await service.fetchJoinRows([join], [row], atInput, { fromQuery: true });
    const json = rowsBody('join', join, at, joins[0]!, true);
    observe(join, started, 1);
    return sendJson(reply, json);
  });

  app.post('/v1/features', async (req, reply) => {
    const started = performance.now();
    const parsed = multiFeaturesBody.safeParse(req.body);
    if (!parsed.success) throw new RequestError(`invalid request body: ${describeIssues(parsed.error)}`);
    const result = await service.fetchJoinRows(parsed.data.joins, parsed.data.rows, parsed.data.at);
    const json = jsonBytes((out) => {
      out.put(`{"at":${result.at},"joins":{`);
      result.joins.forEach((rows, j) =>
        out.put(`${j === 0 ? '' : ','}${JSON.stringify(rows.join.name)}:`).rows(rows),
      );
      out.put('}}');
    });
    observe('multi', started, parsed.data.rows.length);
    return sendJson(reply, json);
  });

  app.post<{ Params: { name: string } }>('/v1/groupbys/:name', async (req, reply) => {
    const started = performance.now();
    const name = service.groupBy(req.params.name).name;
    const body = parseFeaturesBody(req.body);
    if (!body.ok) throw new RequestError(`invalid request body for group-by '${name}': ${body.message}`);
    const { at, rows } = await service.fetchGroupByRows(name, body.value.rows, body.value.at);
    const json = rowsBody('groupBy', name, at, rows, body.value.single);
    observe(`groupby:${name}`, started, rows.length);
    return sendJson(reply, json);
  });

  app.get<{ Params: { name: string } }>('/v1/groupbys/:name', async (req, reply) => {
    const started = performance.now();
    const name = service.groupBy(req.params.name).name;
    const { row, at: atInput } = queryRow(req.query);
    const { at, rows } = await service.fetchGroupByRows(name, [row], atInput, { fromQuery: true });
    const json = rowsBody('groupBy', name, at, rows, true);
    observe(`groupby:${name}`, started, 1);
    return sendJson(reply, json);
  });
}
