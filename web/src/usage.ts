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
