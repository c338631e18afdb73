// The shapes of the persisted queries' results (queries/Dashboard*.graphql).

export interface Summary {
  current: number | null
  previous: number | null
  percentageChange: number | null
}

export interface Point {
  date: string
  endDate: string
  mrr: number
  arr: number
  customers: number
  arpa: number | null
  customerChurnRate: number | null
  nrr: number | null
  ltv: number | null
  quickRatio: number | null
  new: number
  expansion: number
  reactivation: number
  contraction: number
  churn: number
  netNewMrr: number
}

export interface WaterfallStep {
  kind: string
  amount: number
  start: number
  end: number
  base: number
  size: number
}

export interface Overview {
  series: {
    currency: string
    points: Point[]
    waterfall: { date: string; endDate: string; steps: WaterfallStep[] }
  } & Record<string, Summary>
}

export interface BreakdownEntry {
  key: string[]
  label: string
  other: boolean
  points: { date: string; endDate: string; mrr: number }[]
  summary: Summary
}

export interface Breakdown {
  series: { currency: string; breakdown: BreakdownEntry[] }
}

export interface Viewer {
  name: string
  scopes: string[]
  keyless: boolean
  allows: string[]
}

export interface Meta {
  viewer: Viewer
  dataRange: { first: string | null; last: string | null; today: string; baseCurrency: string }
  metrics: {
    name: string
    dimensions: { name: string; description: string; level: string }[]
    filters: { name: string; ops: string[] }[]
  }[]
  segments: { id: string; name: string }[]
}

export interface MovementEvent {
  customerId: string
  externalId: string
  name: string | null
  day: string
  kind: string
  amount: number
  mrrBefore: number
  mrrAfter?: number
  plans: string[]
}

export interface MovementPage {
  totalCount: number
  totalAmount: number
  pageInfo: { endCursor: string | null; hasNextPage: boolean }
  events: MovementEvent[]
}

export interface Movements {
  movements: MovementPage
}

export interface Churn {
  churn: { currency: string; churnedCustomers: MovementPage; revenueChurn: MovementPage }
}

export interface Customer {
  customer: {
    id: string
    externalId: string
    name: string | null
    email: string | null
    country: string | null
    customerSince: string | null
    mrr: number
    arr: number
    currency: string | null
    status: string
    churnedAt: string | null
    churnedMrr: number | null
    mrrSeries: { date: string; endDate: string; mrr: number }[]
    subscriptions: {
      id: string
      externalId: string
      plan: string | null
      quantity: number
      interval: string
      status: string
      mrr: number
      currency: string
      started: string
      ended: string | null
    }[]
    activities: { day: string; kind: string; amount: number; mrrBefore: number; mrrAfter: number; description: string }[]
    attributes: { key: string; type: string; text: string }[]
  }
}

export interface Trials {
  trials: {
    points: {
      date: string
      endDate: string
      trialsStarted: number
      trialsConverted: number
      trialsExpired: number
      conversionRate: number | null
    }[]
    funnel: { started: number; converted: number; expired: number; inProgress: number; conversionRate: number | null }
  }
}

export interface Cohorts {
  cohorts: {
    cohort: string
    size: number
    ltv: number | null
    cells: {
      offset: number
      month: string
      activeCustomers: number
      mrr: number
      customerRetention: number | null
      mrrRetention: number | null
    }[]
  }[]
}

export interface UsageMetric {
  id: string
  name: string
  description: string
  eventName: string | null
  aggregation: string | null
  property: string | null
  valueType: string
  queryType: string
  expression: string | null
  filters: { property: string; op: string; values: string[] }[]
}

export interface UsageMetrics {
  usageMetrics: UsageMetric[]
}

export interface UsagePoint {
  date: string
  endDate: string
  value: number | null
}

export interface Usage {
  usageSeries: {
    points?: UsagePoint[] // without a breakdown
    breakdown?: { key: string[]; label: string; points: UsagePoint[] }[] // with one
  }
  usageTop: {
    customerId: string
    value: number | null
    customer: { id: string; externalId: string; name: string | null; country: string | null } | null
  }[]
}

export interface CustomerUsage {
  customer: { id: string } & Record<string, number | null> // m0..m7: its value of each slot's metric
}
