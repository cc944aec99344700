import {
  DuckDBDataChunk,
  type DuckDBAppender,
  type DuckDBConnection,
  type DuckDBType,
  type DuckDBValue,
} from '@duckdb/node-api';
import { ident, siblingConnection } from './duck.ts';

const CHUNK_ROWS = 2048;

/**
 * Appends rows to a DuckDB table column-wise, one DataChunk per 2048 rows: far fewer native calls than
 * appending value by value, which dominates the cost of writing millions of feature values.
 * @internal
 */
export class ChunkAppender {
  private readonly columns: DuckDBValue[][];
  private rows = 0;

  private constructor(
    private readonly connection: DuckDBConnection,
    private readonly appender: DuckDBAppender,
    private readonly types: readonly DuckDBType[],
  ) {
    this.columns = types.map(() => []);
  }

  /**
   * Creates `table` with these columns (replacing it) and opens an appender on it, on its own connection
   * so that streams open on `conn` are not cut short by the appender's flushes.
   */
  static async create(
    conn: DuckDBConnection,
    table: string,
    columns: ReadonlyArray<{ name: string; type: DuckDBType }>,
  ): Promise<ChunkAppender> {
    const defs = columns.map((c) => `${ident(c.name)} ${c.type.toString()}`).join(', ');
    const own = await siblingConnection(conn);
    await own.run(`CREATE OR REPLACE TABLE ${ident(table)} (${defs})`);
    const appender = await own.createAppender(table);
    return new ChunkAppender(
      own,
      appender,
      columns.map((c) => c.type),
    );
  }

  /** Column `i` of the pending rows; push one value per row into every column, then call `endRow`. */
  column(i: number): DuckDBValue[] {
    return this.columns[i];
  }

  endRow(): void {
    if (++this.rows === CHUNK_ROWS) this.flushChunk();
  }

  /** Writes pending rows and closes the appender. */
  close(): void {
    if (this.rows > 0) this.flushChunk();
    this.appender.flushSync();
    this.appender.closeSync();
    this.connection.closeSync();
  }

  private flushChunk(): void {
    const chunk = DuckDBDataChunk.create(this.types, this.rows);
    for (let i = 0; i < this.columns.length; i++) {
      chunk.setColumnValues(i, this.columns[i]);
      this.columns[i] = [];
    }
    this.appender.appendDataChunk(chunk);
    this.rows = 0;
  }
}
