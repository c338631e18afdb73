// The URL as the app's state: read on load and on back/forward, written on every change.
import { useEffect, useState } from 'preact/hooks'
import { parse, serialize, type State } from './url'

export type Navigate = (patch: Partial<State>) => void

export function useUrlState(): [State, Navigate] {
  const [state, setState] = useState<State>(() => parse(window.location.search))
  useEffect(() => {
    const onPop = () => setState(parse(window.location.search))
    window.addEventListener('popstate', onPop)
    return () => window.removeEventListener('popstate', onPop)
  }, [])
  const navigate: Navigate = (patch) => {
    setState((current) => {
      const next = { ...current, ...patch }
      const search = serialize(next)
      if (search !== window.location.search) window.history.pushState(null, '', search || '/')
      return next
    })
  }
  return [state, navigate]
}
