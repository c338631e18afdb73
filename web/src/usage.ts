// The usage view's own logic: which of the shared controls apply to usage metrics (the usage
// cube's dimensions and filters), the spec sent with DashboardUsage, the metric shown, and the
// current month as a timeframe. No figure is computed here.

import type { UsageMetric } from './api'
import type { Filter, Spec, State } from './url'

// The usage cube's dimensions (app.metrics.usage.USAGE_CUBE) besides attributes and properties.
export const USAGE_DIMENSIONS = ['customer_country', 'region', 'plan'] as const
const PREFIXES = ['attr.', 'property.']

// A breakdown the usage series accepts: its own dimensions, attributes, event properties.
export function usageDimension(name: string): boolean {
  return (USAGE_DIMENSIONS as readonly string[]).includes(name) || PREFIXES.some((p) => name.startsWith(p))
}

// A filter field it accepts: the same, and `customer`.
export function usageFilterable(name: string): boolean {
  return name === 'customer' || usageDimension(name)
}

export interface UsageSpec {
  spec: Spec
  ignored: Filter[] // filters of the shared controls that usage metrics cannot apply
  dimension: string | null // the breakdown sent, if the chosen one applies
  broken: boolean // one line per dimension value or compared segment, instead of the total
}

// The QuerySpecInput of the usage view: the applicable filters, the segment, the compared
// segments and the breakdown (when it applies); usage values carry no currency.
export function usageSpec(state: State): UsageSpec {
  const filters = state.filters.filter((f) => usageFilterable(f.field))
  const ignored = state.filters.filter((f) => !usageFilterable(f.field))
  const dimension = state.dimension !== null && usageDimension(state.dimension) ? state.dimension : null
  return {
    spec: {
      filters,
      segment: state.segment,
      currency: null,
      compareSegments: state.compare,
      dimensions: dimension ? [dimension] : [],
    },
    ignored,
    dimension,
    broken: dimension !== null || state.compare.length > 0,
  }
}

// The metric shown: the one the URL names, else the first defined.
export function chosenMetric<T extends { id: string }>(metrics: T[], id: string | null): T | null {
  return metrics.find((m) => m.id === id) ?? metrics[0] ?? null
}

export interface Timeframe {
  from: string
  to: string
}

// The calendar month (UTC) of `today` (YYYY-MM-DD), half-open: [its first day, the next's).
export function monthTimeframe(today: string): Timeframe {
  const [year, month] = today.split('-').map(Number)
  const next = month === 12 ? [year + 1, 1] : [year, month + 1]
  const iso = (y: number, m: number) => `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-01T00:00:00Z`
  return { from: iso(year, month), to: iso(next[0], next[1]) }
}

// What a metric computes, in words: "SUM of tokens of api_call events where model EQ large";
// a COMPOSITE metric, its expression.
export function definition(metric: UsageMetric): string {
  if (metric.queryType === 'COMPOSITE') return metric.expression ?? ''
  const what = metric.property ? `${metric.aggregation} of ${metric.property}` : `${metric.aggregation}`
  const where = metric.filters.map((f) => `${f.property} ${f.op} ${f.values.join(', ')}`).join(' and ')
  return `${what} of ${metric.eventName} events${where ? ` where ${where}` : ''}`
}

// The slots of DashboardCustomerUsage: slot i reads metric $mi when $usei is true, so one
// request carries up to USAGE_SLOTS metrics (a persisted document cannot list fields by a
// variable). More metrics take one request per USAGE_SLOTS.
export const USAGE_SLOTS = 8

export function slotChunks<T>(items: T[], size = USAGE_SLOTS): T[][] {
  const chunks: T[][] = []
  for (let start = 0; start < items.length; start += size) chunks.push(items.slice(start, start + size))
  return chunks
}

// The variables of one chunk's request: {m0: id, use0: true, ...}; the unused slots keep
// their defaults (skipped).
export function slotVariables(ids: string[]): Record<string, string | boolean> {
  if (ids.length > USAGE_SLOTS) throw new Error(`at most ${USAGE_SLOTS} metrics per request`)
  return Object.fromEntries(ids.flatMap((id, slot) => [[`m${slot}`, id], [`use${slot}`, true]]))
}

// Slot i's value in the answer (null: no value; undefined: not asked).
export function slotValue(customer: Record<string, unknown>, slot: number): number | null | undefined {
  return customer[`m${slot}`] as number | null | undefined
}
