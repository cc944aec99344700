import type { FastifyInstance, FastifyReply } from 'fastify';
import type { FeatureRow } from '../assemble.ts';
import type { FeatureService } from '../feature-service.ts';
import { featureRowJson, featureRowsJson } from '../feature-json.ts';
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
 * `{"<label>":<name>,"at":<at>,"rows":[…]}`, or for a single row `{"<label>":…,"at":…,"features":…,"status":…}`;
 * the same bytes fastify's JSON.stringify would send, built by feature-json.ts (wide rows serialize slowly).
 */
function sendRows(
  reply: FastifyReply,
  label: 'join' | 'groupBy',
  name: string,
  at: number,
  rows: readonly FeatureRow[],
  single: boolean,
): FastifyReply {
  const head = `{"${label}":${JSON.stringify(name)},"at":${at},`;
  const json = single
    ? head + featureRowJson(rows[0]!).slice(1)
    : head + '"rows":' + featureRowsJson(rows) + '}';
  return reply.type('application/json; charset=utf-8').send(json);
}

/**
 * Feature routes:
 * - `POST /v1/features/:join` `{ rows: [...], at? }` → `{ join, at, rows: [{ features, status }] }`,
 *   or `{ keys: {...}, at? }` → `{ join, at, features, status }`;
 * - `GET /v1/features/:join?card_id=c1&at=...` → the single-row shape;
 * - `POST /v1/features` `{ joins: [...], rows: [...], at? }` → `{ at, joins: { name: [{ features, status }] } }`;
 * - `GET|POST /v1/groupbys/:name` → the same shapes as a join, for one group-by's features.
 */
export function registerFeatureRoutes(
  app: FastifyInstance,
  service: FeatureService,
  metrics: ServeMetrics,
): void {
  const observe = (label: string, started: number, rows: number) => {
    metrics.fetchSeconds.labels(label).observe((performance.now() - started) / 1000);
    metrics.fetchRows.labels(label).inc(rows);
  };

  app.post<{ Params: { join: string } }>('/v1/features/:join', async (req, reply) => {
    const started = performance.now();
    const join = service.join(req.params.join).name;
    const body = parseFeaturesBody(req.body);
    if (!body.ok) throw new RequestError(`invalid request body for join '${join}': ${body.message}`);
    const { at, joins } = await service.fetchJoins([join], body.value.rows, body.value.at);
    const rows = joins[join]!;
    observe(join, started, rows.length);
    return sendRows(reply, 'join', join, at, rows, body.value.single);
  });

  app.get<{ Params: { join: string } }>('/v1/features/:join', async (req, reply) => {
    const started = performance.now();
    const join = service.join(req.params.join).name;
    const { row, at: atInput } = queryRow(req.query);
    const { at, joins } = await service.fetchJoins([join], [row], atInput, { fromQuery: true });
    observe(join, started, 1);
    return sendRows(reply, 'join', join, at, joins[join]!, true);
  });

  app.post('/v1/features', async (req, reply) => {
    const started = performance.now();
    const parsed = multiFeaturesBody.safeParse(req.body);
    if (!parsed.success) throw new RequestError(`invalid request body: ${describeIssues(parsed.error)}`);
    const result = await service.fetchJoins(parsed.data.joins, parsed.data.rows, parsed.data.at);
    observe('multi', started, parsed.data.rows.length);
    const joins = Object.entries(result.joins).map(
      ([name, rows]) => `${JSON.stringify(name)}:${featureRowsJson(rows)}`,
    );
    return reply
      .type('application/json; charset=utf-8')
      .send(`{"at":${result.at},"joins":{${joins.join(',')}}}`);
  });

  app.post<{ Params: { name: string } }>('/v1/groupbys/:name', async (req, reply) => {
    const started = performance.now();
    const name = service.groupBy(req.params.name).name;
    const body = parseFeaturesBody(req.body);
    if (!body.ok) throw new RequestError(`invalid request body for group-by '${name}': ${body.message}`);
    const { at, rows } = await service.fetchGroupBy(name, body.value.rows, body.value.at);
    observe(`groupby:${name}`, started, rows.length);
    return sendRows(reply, 'groupBy', name, at, rows, body.value.single);
  });

  app.get<{ Params: { name: string } }>('/v1/groupbys/:name', async (req, reply) => {
    const started = performance.now();
    const name = service.groupBy(req.params.name).name;
    const { row, at: atInput } = queryRow(req.query);
    const { at, rows } = await service.fetchGroupBy(name, [row], atInput, { fromQuery: true });
    observe(`groupby:${name}`, started, 1);
    return sendRows(reply, 'groupBy', name, at, rows, true);
  });
}
