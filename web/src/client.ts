// The one GraphQL client: every document is a file of queries/, sent by the sha256 the server
// registered it under (APQ: `extensions.persistedQuery`), never as text. The hashes come from
// the manifest the build generates from queries/ (python -m app.security.manifest).

import manifest from './generated/queries.json'

export type QueryName =
  | 'DashboardMeta'
  | 'DashboardOverview'
  | 'DashboardBreakdown'
  | 'DashboardMovements'
  | 'DashboardChurn'
  | 'DashboardCustomer'
  | 'DashboardTrials'
  | 'DashboardCohorts'
  | 'DashboardUsageMetrics'
  | 'DashboardUsage'
  | 'DashboardCustomerUsage'

const HASHES: Record<string, string> = manifest
const ENDPOINT = '/graphql'
const MAX_GET_URL = 2000 // longer requests (many filters) go by POST
const KEY = 'tidemill.apiKey'

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
  ) {
    super(message)
  }
}

// The API key lives in this tab's session only (sessionStorage), never in the URL or on disk.
export const apiKey = {
  get: (): string | null => sessionStorage.getItem(KEY),
  set: (key: string) => sessionStorage.setItem(KEY, key.trim()),
  clear: () => sessionStorage.removeItem(KEY),
}

export function hashOf(name: QueryName): string {
  const hash = HASHES[name]
  if (!hash) throw new Error(`${name} is not in queries/ (rebuild the dashboard)`)
  return hash
}

export interface Request {
  url: string
  init: RequestInit
}

// The HTTP request of a persisted query: GET when it fits a URL (cacheable), else POST.
export function request(name: QueryName, variables: object, key: string | null): Request {
  const extensions = { persistedQuery: { version: 1, sha256Hash: hashOf(name) } }
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (key) headers.Authorization = `Bearer ${key}`
  const params = new URLSearchParams({
    operationName: name,
    variables: JSON.stringify(variables),
    extensions: JSON.stringify(extensions),
  })
  const url = `${ENDPOINT}?${params}`
  if (url.length <= MAX_GET_URL) return { url, init: { headers } }
  const body = JSON.stringify({ operationName: name, variables, extensions })
  headers['Content-Type'] = 'application/json'
  return { url: ENDPOINT, init: { method: 'POST', headers, body } }
}

interface Response<T> {
  data?: T | null
  errors?: { message: string; extensions?: { code?: string } }[]
}

export async function query<T>(name: QueryName, variables: object = {}): Promise<T> {
  const { url, init } = request(name, variables, apiKey.get())
  performance.mark(`tidemill:sent:${name}`)
  const response = await fetch(url, init)
  let body: Response<T>
  try {
    body = (await response.json()) as Response<T>
  } catch {
    throw new ApiError(`HTTP ${response.status} from ${ENDPOINT}`, 'HTTP', response.status)
  }
  performance.mark(`tidemill:answered:${name}`)
  const [error] = body.errors ?? []
  if (error || !body.data) {
    const code = error?.extensions?.code ?? 'INTERNAL'
    throw new ApiError(error?.message ?? 'no data', code, response.status)
  }
  return body.data
}
