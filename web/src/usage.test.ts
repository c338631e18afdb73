import { describe, expect, it } from 'vitest'
import type { UsageMetric } from './api'
import { DEFAULTS } from './url'
import customerUsage from '../../queries/DashboardCustomerUsage.graphql?raw'
import {
  USAGE_SLOTS,
  chosenMetric,
  definition,
  monthTimeframe,
  slotChunks,
  slotValue,
  slotVariables,
  usageDimension,
  usageFilterable,
  usageSpec,
} from './usage'

const metric = (given: Partial<UsageMetric>): UsageMetric => ({
  id: '1',
  name: 'api_calls',
  description: '',
  eventName: 'api_call',
  aggregation: 'COUNT',
  property: null,
  valueType: 'FLOAT',
  queryType: 'INDEXED',
  expression: null,
  filters: [],
  ...given,
})

describe('the usage view', () => {
  it('offers the usage cube’s dimensions, attributes and properties only', () => {
    expect(['customer_country', 'region', 'plan', 'attr.tier', 'property.model'].every(usageDimension)).toBe(true)
    expect(['currency', 'plan_interval', 'product', 'customer', ''].some(usageDimension)).toBe(false)
    expect(usageFilterable('customer')).toBe(true)
    expect(usageFilterable('currency')).toBe(false)
  })

  it('sends the applicable filters and breakdown, names the others, and no currency', () => {
    const state = {
      ...DEFAULTS,
      view: 'usage' as const,
      currency: 'EUR',
      dimension: 'plan',
      segment: '4',
      compare: ['1', '2'],
      filters: [
        { field: 'customer_country', op: 'IN', values: ['FR', 'DE'] },
        { field: 'currency', op: 'EQ', values: ['EUR'] },
      ],
    }
    expect(usageSpec(state)).toEqual({
      spec: {
        filters: [{ field: 'customer_country', op: 'IN', values: ['FR', 'DE'] }],
        segment: '4',
        currency: null,
        compareSegments: ['1', '2'],
        dimensions: ['plan'],
      },
      ignored: [{ field: 'currency', op: 'EQ', values: ['EUR'] }],
      dimension: 'plan',
      broken: true,
    })
    const other = usageSpec({ ...state, dimension: 'plan_interval' })
    expect(other.spec.dimensions).toEqual([])
    expect(other.dimension).toBeNull()
    expect(other.broken).toBe(true) // by the compared segments
    expect(usageSpec({ ...state, dimension: 'plan_interval', compare: [] }).broken).toBe(false)
  })

  it('shows the metric the URL names, else the first defined, else none', () => {
    const metrics = [metric({ id: '3' }), metric({ id: '5' })]
    expect(chosenMetric(metrics, '5')?.id).toBe('5')
    expect(chosenMetric(metrics, '9')?.id).toBe('3')
    expect(chosenMetric(metrics, null)?.id).toBe('3')
    expect(chosenMetric([], '5')).toBeNull()
  })

  it('reads the current month as a half-open UTC timeframe, across a year end', () => {
    expect(monthTimeframe('2026-12-01')).toEqual({ from: '2026-12-01T00:00:00Z', to: '2027-01-01T00:00:00Z' })
    expect(monthTimeframe('2026-02-28')).toEqual({ from: '2026-02-01T00:00:00Z', to: '2026-03-01T00:00:00Z' })
    expect(monthTimeframe('0999-09-30')).toEqual({ from: '0999-09-01T00:00:00Z', to: '0999-10-01T00:00:00Z' })
  })

  it('says what a metric computes', () => {
    expect(definition(metric({}))).toBe('COUNT of api_call events')
    const large = metric({
      aggregation: 'SUM',
      property: 'tokens',
      filters: [
        { property: 'model', op: 'EQ', values: ['large'] },
        { property: 'region', op: 'IN', values: ['eu', 'us'] },
      ],
    })
    expect(definition(large)).toBe('SUM of tokens of api_call events where model EQ large and region IN eu, us')
    const composite = metric({ queryType: 'COMPOSITE', aggregation: null, eventName: null, expression: 'tokens / api_calls' })
    expect(definition(composite)).toBe('tokens / api_calls')
  })

  it('fills the slots of DashboardCustomerUsage, 8 metrics a request', () => {
    // the document has exactly USAGE_SLOTS slots, m0..m7, each with its switch
    for (let slot = 0; slot < USAGE_SLOTS; slot++) {
      expect(customerUsage).toContain(`m${slot}: usage(metricId: $m${slot}, timeframe: $timeframe) @include(if: $use${slot})`)
    }
    expect(customerUsage.match(/@include/g)).toHaveLength(USAGE_SLOTS)
    expect(slotVariables(['4', '9'])).toEqual({ m0: '4', use0: true, m1: '9', use1: true })
    expect(slotVariables([])).toEqual({})
    expect(() => slotVariables(Array.from({ length: 9 }, (_, i) => String(i)))).toThrow('at most 8')
    const chunks = slotChunks(Array.from({ length: 17 }, (_, i) => i))
    expect(chunks.map((c) => c.length)).toEqual([8, 8, 1])
    expect(chunks[2]).toEqual([16])
    expect(slotChunks([])).toEqual([])
    const answer = { id: '81', m0: 910, m1: null }
    expect([0, 1, 2].map((slot) => slotValue(answer, slot))).toEqual([910, null, undefined])
  })
})
