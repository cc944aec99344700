import type { InferFeatures } from '../define/join-types.ts';
import type { ColumnBuilder, ColumnValue } from '../define/col.ts';
import type { SchemaInput } from '../define/event-source.ts';
import type { ColumnType, GroupByDef, JoinDef, Scalar, SourceDef } from '../define/types.ts';
import type { FeatureStatus } from './feature-status.ts';
import type { IngestRange } from './routes/event-routes.ts';
import { MAX_ROWS } from './request-schema.ts';

/**
 * Left-row values a fetch may send for a join: its typed left row, where the key columns its parts read are
 * required (null, e.g. for a nullable `ip`, means no entity) and the other columns optional (derivations
 * read them as `row`). A group-by's rows carry its key columns.
 */
export type RequestRow<J> = J extends { readonly _?: { readonly row: infer R; readonly keys: infer K } }
  ? string extends K
    ? { [C in keyof R]?: R[C] | null }
    : Flat<{ [C in keyof R & K]-?: R[C] | null } & { [C in Exclude<keyof R, K>]?: R[C] | null }>
  : J extends { readonly _?: { readonly row: infer R } }
    ? { [C in keyof R]?: R[C] | null }
    : J extends { readonly _?: { readonly keys: infer K extends string } }
      ? { [C in K]: Scalar | null }
      : Record<string, Scalar | null>;

/** A value an event may send for a column: timestamps as epoch ms or ISO-8601 text, null where nullable. */
type EventValue<C> =
  C extends ColumnBuilder<infer T, infer N>
    ? (T extends 'timestamp' ? number | string : ColumnValue<T>) | (N extends false ? never : null)
    : never;

/**
 * An event `ingest` may send to a typed source: its schema columns, the non-nullable ones required (the
 * server refuses an event without them), nullable ones optional; derived columns are computed, not sent.
 * An untyped source (a plain `SourceDef` or a name) takes any object.
 */
export type IngestEvent<S> = S extends { readonly _?: { readonly schema: infer Sch } }
  ? SchemaInput extends Sch
    ? Record<string, unknown>
    : Flat<
        {
          -readonly [K in keyof Sch as Sch[K] extends ColumnBuilder<ColumnType, false>
            ? K
            : never]: EventValue<Sch[K]>;
        } & {
          -readonly [K in keyof Sch as Sch[K] extends ColumnBuilder<ColumnType, false>
            ? never
            : K]?: EventValue<Sch[K]>;
        }
      >
  : Record<string, unknown>;

/** Flattens intersections so editors show (and type tests compare) one plain object type. */
type Flat<T> = { [K in keyof T]: T[K] } & {};

/** One served row: typed feature values and a status per feature. */
export interface FeatureResult<F> {
  readonly features: Flat<F>;
  readonly status: { readonly [K in keyof F]: FeatureStatus };
}

export interface ClientOptions {
  /** Base URL of a `tessera serve` process, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  /** Bearer token when the server requires one (TESSERA_TOKEN / --token). */
  readonly token?: string;
  /** Custom fetch (tests, proxies); defaults to the global `fetch`. */
  readonly fetch?: typeof fetch;
  /**
   * Milliseconds a request may take, answer body included, before it fails with a `TesseraClientError`
   * (statusCode 0). Unset: no limit of ours (Node's fetch still gives up on a connect after 10 s and on a
   * silent server after 300 s).
   */
  readonly timeoutMs?: number;
}

export interface FetchOptions {
  /** Query time (epoch ms or ISO text); defaults to the server's now. */
  readonly at?: number | string;
}

export interface IngestOptions {
  /**
   * Sent as the `Idempotency-Key` header (1-200 printable ASCII characters, e.g. a UUID per batch): resending
   * the same events with the same key after a failure (503, a lost response) appends them at most once,
   * within the server log's dedupe window (default 24 h). Not with the Kafka log (400).
   */
  readonly idempotencyKey?: string;
  /**
   * Event fields that are not source columns: 'reject' the batch (400, the server's default unless it runs
   * with `--ingest-unknown-columns drop`) or 'drop' them, e.g. when forwarding whole upstream records.
   */
  readonly unknownColumns?: 'reject' | 'drop';
}

/** What the server answers to an ingest; `offsets` and `replayed` only for a request with a key. */
export interface IngestResponse {
  readonly source: string;
  readonly accepted: number;
  /** Where the events are in the log, per topic and partition (the original ranges when replayed). */
  readonly offsets?: readonly IngestRange[];
  /** The key had been used for this batch: some or all of it was appended by an earlier request. */
  readonly replayed?: boolean;
}

/**
 * Error of a client call: `statusCode` is the HTTP status of a non-2xx answer, or 0 when no answer came (server
 * down, wrong URL, timeout; `cause` holds the network error). The message names the request and the reason;
 * `issues` lists the server's structured problems (e.g. one per invalid event).
 */
export class TesseraClientError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly issues?: readonly unknown[],
    options?: { readonly cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TesseraClientError';
  }
}

/**
 * The error for a request that got no answer (`fetch` threw, or the answer broke off): names the request,
 * the network's reason (`ECONNREFUSED`, a timeout) and what to check. Also used by `tessera fetch --url`.
 *
 * @example
 * transportError('POST', 'http://127.0.0.1:18199/v1/features/m', err);
 * // TesseraClientError: POST http://127.0.0.1:18199/v1/features/m: no answer: connection refused (ECONNREFUSED …); is `tessera serve` running there, and is the URL right?
 */
export function transportError(
  method: string,
  url: string,
  err: unknown,
  timeoutMs?: number,
): TesseraClientError {
  const where = `${method} ${url.replace(/\/\/[^/@]*@/, '//***@')}`;
  const e = err as { name?: string; message?: string; cause?: unknown };
  let reason: string;
  let fix = 'is `tessera serve` running there, and is the URL right?';
  if (e?.name === 'TimeoutError') {
    reason = `timed out after ${timeoutMs ?? '?'} ms (the client's timeoutMs)`;
    fix = 'is the server overloaded or stuck? raise timeoutMs or send fewer rows per call';
  } else {
    // Node's fetch throws TypeError('fetch failed') and puts the socket's error in `cause`.
    const cause = (e?.cause ?? e) as { code?: string; message?: string; errors?: { message?: string }[] };
    const code = cause?.code;
    const detail = cause?.message || cause?.errors?.[0]?.message || String(err);
    reason = code ? `${REASONS[code] ?? 'network error'} (${code}: ${detail})` : detail;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') fix = 'check the host name in the URL';
    else if (/scheme|parse URL|Invalid URL/i.test(detail) || code === 'ERR_INVALID_URL')
      fix = 'give the URL with its scheme and port, e.g. http://127.0.0.1:8080';
  }
  return new TesseraClientError(0, `${where}: no answer: ${reason}; ${fix}`, undefined, { cause: err });
}

/** Readable names of the network errors a client meets most. */
const REASONS: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host lookup failed',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connect timed out',
  UND_ERR_HEADERS_TIMEOUT: 'the server sent no answer in time',
  UND_ERR_BODY_TIMEOUT: 'the answer stalled',
  UND_ERR_SOCKET: 'the connection closed mid-answer',
};

/**
 * A typed client of the serving API. Results carry the join's inferred feature type, so
 * `(await client.features(fraudModel, rows))[0].features.card_stats_count_1h` is a `number`.
 */
export interface TesseraClient {
  /** Features of a join for any number of rows (sent in batches of 1000) at one time. */
  features<J extends JoinDef>(
    join: J,
    rows: readonly RequestRow<J>[],
    opts?: FetchOptions,
  ): Promise<FeatureResult<InferFeatures<J>>[]>;
  /** Features of a join for one row. */
  feature<J extends JoinDef>(
    join: J,
    row: RequestRow<J>,
    opts?: FetchOptions,
  ): Promise<FeatureResult<InferFeatures<J>>>;
  /** Features of one group-by. */
  groupBy<G extends GroupByDef>(
    groupBy: G,
    rows: readonly RequestRow<G>[],
    opts?: FetchOptions,
  ): Promise<FeatureResult<InferFeatures<G>>[]>;
  /**
   * Appends events to a source's log; resolves once they are durable. With `idempotencyKey`, a resend of
   * the same batch is safe (see `IngestOptions`).
   */
  ingest<S extends SourceDef | string>(
    source: S,
    events: readonly IngestEvent<S>[],
    opts?: IngestOptions,
  ): Promise<IngestResponse>;
}

/**
 * Creates a typed client.
 *
 * @example
 * const client = createClient({ url: 'http://127.0.0.1:8080', token: process.env.TESSERA_TOKEN });
 * // spendModel: a join whose parts read the left columns card_id and merchant_id (both required here)
 * const [row] = await client.features(spendModel, [{ card_id: 'card_42', merchant_id: 'm_7' }]);
 * row.features.card_stats_count_1h; // number
 * row.status.card_stats_count_1h;   // 'ok' | 'missing_key' | 'stale' | 'inexact'
 * // payments: a source with the schema { card_id, merchant_id: string; amount: float; ts: timestamp }
 * await client.ingest(payments, [{ card_id: 'card_42', merchant_id: 'm_7', amount: 12.5, ts: Date.now() }]);
 * await client.ingest('payments', parsedEvents); // by name: untyped events
 */
export function createClient(opts: ClientOptions): TesseraClient {
  const base = opts.url.replace(/\/+$/, '');
  const doFetch = opts.fetch ?? fetch;
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;

  async function post<T>(path: string, body: unknown, extra?: Record<string, string>): Promise<T> {
    const payload = JSON.stringify(body);
    let res: Response;
    let text: string;
    try {
      res = await doFetch(base + path, {
        method: 'POST',
        headers: extra ? { ...headers, ...extra } : headers,
        body: payload,
        ...(opts.timeoutMs === undefined ? {} : { signal: AbortSignal.timeout(opts.timeoutMs) }),
      });
      text = await res.text();
    } catch (err) {
      throw transportError('POST', base + path, err, opts.timeoutMs);
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new TesseraClientError(
        res.status,
        `POST ${path}: HTTP ${res.status} with a non-JSON body: ${text.slice(0, 200)}`,
      );
    }
    if (!res.ok) {
      const err = json as { message?: string; issues?: unknown[] };
      throw new TesseraClientError(
        res.status,
        `POST ${path}: HTTP ${res.status}: ${err.message ?? text}`,
        err.issues,
      );
    }
    return json as T;
  }

  async function batched<R>(path: string, rows: readonly unknown[], at: FetchOptions['at']): Promise<R[]> {
    const out: R[] = [];
    for (let i = 0; i < rows.length; i += MAX_ROWS) {
      const body = { rows: rows.slice(i, i + MAX_ROWS), ...(at === undefined ? {} : { at }) };
      const res = await post<{ rows: R[] }>(path, body);
      out.push(...res.rows);
    }
    return out;
  }

  return {
    features: (join, rows, o) => batched(`/v1/features/${encodeURIComponent(join.name)}`, rows, o?.at),
    async feature(join, row, o) {
      const res = await post<FeatureResult<never>>(`/v1/features/${encodeURIComponent(join.name)}`, {
        keys: row,
        ...(o?.at === undefined ? {} : { at: o.at }),
      });
      return { features: res.features, status: res.status };
    },
    groupBy: (g, rows, o) => batched(`/v1/groupbys/${encodeURIComponent(g.name)}`, rows, o?.at),
    async ingest(source: SourceDef | string, events: readonly object[], o?: IngestOptions) {
      const name = typeof source === 'string' ? source : source.name;
      const key = o?.idempotencyKey;
      const mode = o?.unknownColumns === undefined ? '' : `?unknownColumns=${o.unknownColumns}`;
      return post<IngestResponse>(
        `/v1/events/${encodeURIComponent(name)}${mode}`,
        { events },
        key === undefined ? undefined : { 'idempotency-key': key },
      );
    },
  };
}
