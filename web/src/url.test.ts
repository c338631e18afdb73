import { describe, expect, it } from 'vitest'
import { DEFAULTS, decodeFilter, encodeFilter, parse, serialize, spec, type State } from './url'

describe('URL state', () => {
  it('leaves the defaults out of the URL', () => {
    expect(serialize(DEFAULTS)).toBe('')
    expect(parse('')).toEqual(DEFAULTS)
  })

  it('round-trips every field of a view', () => {
    const state: State = {
      view: 'movements',
      range: 'custom',
      start: '2025-01-01',
      end: '2025-06-30',
      interval: 'QUARTER',
      currency: 'EUR',
      dimension: 'plan',
      filters: [
        { field: 'region', op: 'IN', values: ['Europe', 'North America'] },
        { field: 'attr.note', op: 'CONTAINS', values: ['a,b~c'] },
        { field: 'customer_country', op: 'IS_NULL', values: [] },
      ],
      segment: '3',
      compare: ['1', '2'],
      period: '2025-04-01',
      kinds: ['churn', 'contraction'],
      from: '2025-04-01',
      to: '2025-06-30',
      scope: { field: 'plan', op: 'NOT_IN', values: ['Pro', 'Team'] },
      customer: '42',
      cohorts: 'mrr',
      metric: '7',
    }
    expect(parse(serialize(state))).toEqual(state)
  })

  it('drops the custom dates of a preset range', () => {
    const url = serialize({ ...DEFAULTS, range: '3m', start: '2025-01-01', end: '2025-02-01' })
    expect(url).toBe('?range=3m')
  })

  it('ignores what it does not know and caps the compared segments at 10', () => {
    const compare = Array.from({ length: 12 }, (_, i) => `compare=${i + 1}`).join('&')
    const state = parse(`?view=nope&interval=HOUR&start=yesterday&kind=upgrade&kind=new&${compare}`)
    expect(state.view).toBe('overview')
    expect(state.interval).toBe('MONTH')
    expect(state.start).toBeNull()
    expect(state.kinds).toEqual(['new'])
    expect(state.compare).toHaveLength(10)
  })

  it('encodes filters so that separators inside values survive', () => {
    const filter = { field: 'attr.tag', op: 'EQ', values: ['x,y', '100%'] }
    expect(decodeFilter(encodeFilter(filter))).toEqual(filter)
    expect(decodeFilter('broken')).toBeNull()
  })

  it('gives the GraphQL spec of the controls, the breakdown only when asked', () => {
    const state = { ...DEFAULTS, dimension: 'plan', compare: ['1'], segment: '2', currency: 'GBP' }
    expect(spec(state)).toEqual({
      filters: [],
      segment: '2',
      currency: 'GBP',
      compareSegments: [],
      dimensions: [],
    })
    expect(spec(state, true).dimensions).toEqual(['plan'])
    expect(spec(state, true).compareSegments).toEqual(['1'])
  })
})
