// The one place for URL state: every view and control reads and writes the query string, so a
// view can be bookmarked and shared. Defaults are left out of the URL.

export const VIEWS = ['overview', 'cohorts', 'trials', 'churn', 'usage', 'movements', 'customer', 'access'] as const
export type View = (typeof VIEWS)[number]

export const PRESETS = ['3m', '6m', '12m', 'ytd', 'all', 'custom'] as const
export type Preset = (typeof PRESETS)[number]

export const INTERVALS = ['DAY', 'WEEK', 'MONTH', 'QUARTER', 'YEAR'] as const
export type Interval = (typeof INTERVALS)[number]

export const KINDS = ['new', 'expansion', 'reactivation', 'contraction', 'churn'] as const
export type Kind = (typeof KINDS)[number]

export const MAX_COMPARED = 10

export interface Filter {
  field: string
  op: string
  values: string[]
}

export interface State {
  view: View
  range: Preset
  start: string | null // custom range only
  end: string | null
  interval: Interval
  currency: string | null // null: the base currency
  dimension: string | null // breakdown of the MRR chart
  filters: Filter[]
  segment: string | null
  compare: string[] // compared segment ids, at most MAX_COMPARED
  period: string | null // the waterfall's period (its first day); null: the last
  kinds: Kind[] // movements view: the kinds drilled into
  from: string | null // movements view: the period drilled into
  to: string | null
  scope: Filter | null // movements view: the breakdown line drilled into, as one more filter
  customer: string | null // customer view
  cohorts: 'customers' | 'mrr'
  metric: string | null // usage view: the usage metric's id; null: the first defined
}

export const DEFAULTS: State = {
  view: 'overview',
  range: '12m',
  start: null,
  end: null,
  interval: 'MONTH',
  currency: null,
  dimension: null,
  filters: [],
  segment: null,
  compare: [],
  period: null,
  kinds: [],
  from: null,
  to: null,
  scope: null,
  customer: null,
  cohorts: 'customers',
  metric: null,
}

const DATE = /^\d{4}-\d{2}-\d{2}$/

function oneOf<T extends string>(values: readonly T[], value: string | null, fallback: T): T {
  return value !== null && (values as readonly string[]).includes(value) ? (value as T) : fallback
}

function date(value: string | null): string | null {
  return value !== null && DATE.test(value) ? value : null
}

function text(value: string | null): string | null {
  return value ? value : null
}

// A filter in the URL: field~OP~value1,value2 (values are percent-encoded by URLSearchParams;
// a comma inside a value is written %2C by encodeValue).
export function encodeFilter(filter: Filter): string {
  return [filter.field, filter.op, filter.values.map(encodeURIComponent).join(',')].join('~')
}

export function decodeFilter(value: string): Filter | null {
  const [field, op, ...rest] = value.split('~')
  const values = rest.join('~')
  if (!field || !op || rest.length === 0) return null
  return { field, op, values: values ? values.split(',').map(decodeURIComponent) : [] }
}

export function parse(search: string): State {
  const params = new URLSearchParams(search)
  const get = (name: string) => params.get(name)
  return {
    view: oneOf(VIEWS, get('view'), DEFAULTS.view),
    range: oneOf(PRESETS, get('range'), DEFAULTS.range),
    start: date(get('start')),
    end: date(get('end')),
    interval: oneOf(INTERVALS, get('interval'), DEFAULTS.interval),
    currency: text(get('currency')),
    dimension: text(get('dimension')),
    filters: params.getAll('filter').map(decodeFilter).filter((f): f is Filter => f !== null),
    segment: text(get('segment')),
    compare: params.getAll('compare').slice(0, MAX_COMPARED),
    period: date(get('period')),
    kinds: params.getAll('kind').filter((k): k is Kind => (KINDS as readonly string[]).includes(k)),
    from: date(get('from')),
    to: date(get('to')),
    scope: get('scope') === null ? null : decodeFilter(get('scope') ?? ''),
    customer: text(get('customer')),
    cohorts: get('cohorts') === 'mrr' ? 'mrr' : 'customers',
    metric: text(get('metric')),
  }
}

export function serialize(state: State): string {
  const params = new URLSearchParams()
  const put = (name: string, value: string | null, fallback: string | null = null) => {
    if (value !== null && value !== fallback) params.set(name, value)
  }
  put('view', state.view, DEFAULTS.view)
  put('range', state.range, DEFAULTS.range)
  if (state.range === 'custom') {
    put('start', state.start)
    put('end', state.end)
  }
  put('interval', state.interval, DEFAULTS.interval)
  put('currency', state.currency)
  put('dimension', state.dimension)
  state.filters.forEach((filter) => params.append('filter', encodeFilter(filter)))
  put('segment', state.segment)
  state.compare.slice(0, MAX_COMPARED).forEach((id) => params.append('compare', id))
  put('period', state.period)
  state.kinds.forEach((kind) => params.append('kind', kind))
  put('from', state.from)
  put('to', state.to)
  put('scope', state.scope && encodeFilter(state.scope))
  put('customer', state.customer)
  put('cohorts', state.cohorts, DEFAULTS.cohorts)
  put('metric', state.metric)
  const query = params.toString()
  return query ? `?${query}` : ''
}

// The GraphQL QuerySpecInput of the shared controls (dimensions are added by the breakdown).
export interface Spec {
  filters: Filter[]
  segment: string | null
  compareSegments: string[]
  currency: string | null
  dimensions: string[]
}

export function spec(state: State, withBreakdown = false): Spec {
  return {
    filters: state.filters,
    segment: state.segment,
    currency: state.currency,
    compareSegments: withBreakdown ? state.compare : [],
    dimensions: withBreakdown && state.dimension ? [state.dimension] : [],
  }
}
