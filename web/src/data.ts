// Loading a persisted query into a view: refetched when its variables change, with the
// loading and error states every view shows the same way.
import { useEffect, useState } from 'preact/hooks'
import { ApiError, query, type QueryName } from './client'

export type Loaded<T> =
  | { status: 'loading'; data?: T }
  | { status: 'ready'; data: T }
  | { status: 'error'; error: ApiError | Error; data?: T }

export function useQuery<T>(name: QueryName | null, variables: object): Loaded<T> {
  const key = JSON.stringify(variables)
  const [state, setState] = useState<Loaded<T>>({ status: 'loading' })
  useEffect(() => {
    if (name === null) return undefined
    let current = true
    setState((previous) => ({ status: 'loading', data: previous.data }))
    query<T>(name, JSON.parse(key) as object).then(
      (data) => current && setState({ status: 'ready', data }),
      (error: Error) => current && setState({ status: 'error', error }),
    )
    return () => {
      current = false
    }
  }, [name, key])
  return state
}
