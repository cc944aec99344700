/**
 * Tessera's public API. Everything users import comes from here; other modules are internal.
 *
 * @example
 * import { eventSource, groupBy, join, col, count, sum, type InferFeatures } from 'tessera';
 */
export { col, type ColumnBuilder, type ColumnValue, type InferColumn } from './define/col.ts';
export {
  eventSource,
  type EventSource,
  type EventSourceSpec,
  type InferRow,
  type InferSchemaRow,
  type SchemaInput,
} from './define/event-source.ts';
export { groupBy, type GroupBy, type GroupBySpec } from './define/group-by.ts';
export { join, type Join, type JoinSpec } from './define/join.ts';
export type { InferFeatures, JoinPartSpec } from './define/join-types.ts';
export {
  count,
  sum,
  avg,
  min,
  max,
  variance,
  stddev,
  first,
  last,
  firstK,
  lastK,
  topK,
  bottomK,
  uniqueCount,
  approxUniqueCount,
  approxPercentile,
  histogram,
  type KOptions,
  type PercentileOptions,
} from './define/aggregations.ts';
export type { AggSpec, AggOptions, WindowInput } from './define/aggregation-spec.ts';
export { featureRefs, featureNames } from './define/feature-refs.ts';
export { TesseraDefinitionError, type Issue, type IssueCode } from './define/issues.ts';
export type * from './define/types.ts';
export {
  validateRepo,
  repoIssues,
  closeRepo,
  type RepoDefs,
  type ValidateRepoOptions,
} from './define/validate-repo.ts';
export { resolveSourceFiles, sourcePattern } from './define/source-files.ts';
export { renderIssues } from './define/render-issues.ts';
export { buildPlan, sourceNode, groupByNode, joinNode } from './plan/build-plan.ts';
export { semanticHash, groupBySemantics } from './plan/semantic-hash.ts';
export { diffPlans, type PlanDiff, type GroupByChange, type JoinChange } from './plan/diff-plans.ts';
export { canonicalJson, type Json } from './plan/canonical-json.ts';
export { renderPlanSummary } from './plan/plan-summary.ts';
export { renderPlanDiff } from './plan/diff-summary.ts';
export type * from './plan/plan-ir.ts';
export { runBackfill, type BackfillOptions, type BackfillResult } from './offline/backfill.ts';
export { readEvents, type EventBatch, type ReadEventsOptions } from './offline/read-events.ts';
export { BadInputError, type BadRowPolicy, type BadRowLocation } from './offline/bad-input.ts';
export { partitionOf, parsePartition, type PartitionSpec } from './offline/partition-hash.ts';
export type { OutputFormat } from './offline/output-columns.ts';
export {
  createClient,
  TesseraClientError,
  type TesseraClient,
  type ClientOptions,
  type FetchOptions,
  type FeatureResult,
  type IngestOptions,
  type IngestResponse,
  type RequestRow,
  type IngestEvent,
} from './serve/client.ts';
export type { FeatureStatus } from './serve/feature-status.ts';
