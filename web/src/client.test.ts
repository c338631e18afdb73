import { describe, expect, it } from 'vitest'
import { hashOf, request } from './client'
import manifest from './generated/queries.json'

describe('the GraphQL client', () => {
  it('sends a persisted query by its hash alone, by GET', () => {
    const { url, init } = request('DashboardMeta', {}, null)
    const params = new URL(url, 'http://tidemill.test').searchParams
    expect(params.get('query')).toBeNull()
    expect(JSON.parse(params.get('extensions') ?? '')).toEqual({
      persistedQuery: { version: 1, sha256Hash: manifest.DashboardMeta },
    })
    expect(init.method).toBeUndefined()
    expect(init.headers).toEqual({ Accept: 'application/json' })
  })

  it('sends the key as a bearer token', () => {
    const { init } = request('DashboardMeta', {}, 'tm_secret')
    expect((init.headers as Record<string, string>).Authorization).toBe('Bearer tm_secret')
  })

  it('goes by POST when the variables make the URL too long, still without the document', () => {
    const filters = Array.from({ length: 60 }, (_, i) => ({ field: 'region', op: 'IN', values: [`value ${i}`] }))
    const { url, init } = request('DashboardOverview', { spec: { filters } }, null)
    expect(url).toBe('/graphql')
    expect(init.method).toBe('POST')
    const body = JSON.parse(init.body as string)
    expect(body.query).toBeUndefined()
    expect(body.extensions.persistedQuery.sha256Hash).toBe(hashOf('DashboardOverview'))
    expect(body.variables.spec.filters).toHaveLength(60)
  })

  it('knows every dashboard document by a sha256', () => {
    for (const name of ['DashboardMeta', 'DashboardOverview', 'DashboardBreakdown', 'DashboardMovements',
      'DashboardChurn', 'DashboardCustomer', 'DashboardTrials', 'DashboardCohorts', 'DashboardUsageMetrics',
      'DashboardUsage', 'DashboardCustomerUsage'] as const) {
      expect(hashOf(name)).toMatch(/^[0-9a-f]{64}$/)
    }
  })
})
