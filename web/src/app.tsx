// The shell: the access check, the navigation, the shared controls and the current view.
import type { Meta } from './api'
import { ApiError } from './client'
import { Controls } from './controls'
import { useQuery } from './data'
import { presetRange, type Range } from './ranges'
import { useUrlState, type Navigate } from './state'
import type { State, View } from './url'
import { Access } from './views/access'
import { ChurnView } from './views/churn'
import { CohortsView } from './views/cohorts'
import { CustomerView } from './views/customer'
import { MovementsView } from './views/movements'
import { Overview } from './views/overview'
import { TrialsView } from './views/trials'
import { UsageView } from './views/usage'

export interface ViewProps {
  state: State
  navigate: Navigate
  meta: Meta
  range: Range
}

const NAV: [View, string][] = [
  ['overview', 'Overview'],
  ['cohorts', 'Cohorts'],
  ['trials', 'Trials'],
  ['churn', 'Churn'],
  ['usage', 'Usage'],
  ['access', 'Access'],
]

function Body(props: ViewProps) {
  switch (props.state.view) {
    case 'overview': // rendered by App itself (before Meta, when it can)
      return <Overview {...props} />
    case 'cohorts':
      return <CohortsView {...props} />
    case 'trials':
      return <TrialsView {...props} />
    case 'churn':
      return <ChurnView {...props} />
    case 'usage':
      return <UsageView {...props} />
    case 'movements':
      return <MovementsView {...props} />
    case 'customer':
      return <CustomerView {...props} />
    case 'access':
      return <Access viewer={props.meta.viewer} />
  }
}

// The overview does not wait for DashboardMeta when its range does not need the data's first
// day: its query goes out with Meta's, counted from this browser's UTC day (Meta's `today`
// replaces it when it comes; the same day, so the same request, nearly always).
function earlyRange(state: State): Range | null {
  if (state.view !== 'overview' || state.range === 'all') return null
  const today = new Date().toISOString().slice(0, 10)
  return presetRange(state.range, { first: null, last: null, today }, {
    start: state.start ?? undefined,
    end: state.end ?? undefined,
  })
}

export function App() {
  const [state, navigate] = useUrlState()
  const meta = useQuery<Meta>('DashboardMeta', {})
  const refused = meta.status === 'error' && meta.error instanceof ApiError && meta.error.status === 401
  const early = earlyRange(state)
  return (
    <>
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="top">
        <span class="brand" aria-hidden="true">
          Tidemill
        </span>
        <nav aria-label="Views">
          <ul>
            {NAV.map(([view, label]) => (
              <li>
                <a
                  href={`?view=${view}`}
                  aria-current={state.view === view ? 'page' : undefined}
                  onClick={(event) => {
                    event.preventDefault()
                    navigate({ view })
                  }}
                >
                  {label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <a class="graphiql" href="/graphql">
          GraphiQL
        </a>
      </header>
      <main id="main" tabIndex={-1}>
        {refused && <Access viewer={null} reason={meta.error.message} />}
        {meta.status === 'error' && !refused && (
          <p role="alert" class="error">
            {meta.error.message}
          </p>
        )}
        {meta.data && state.view !== 'access' && <Controls {...ready(state, navigate, meta.data)} />}
        {state.view === 'overview' && (meta.data || (early && !refused)) ? (
          // The same element before and after Meta: the overview keeps its request.
          <Overview state={state} navigate={navigate} range={meta.data ? ready(state, navigate, meta.data).range : early!} />
        ) : meta.data ? (
          <Body {...ready(state, navigate, meta.data)} />
        ) : (
          meta.status === 'loading' && <p class="loading">Loading…</p>
        )}
      </main>
    </>
  )
}

function ready(state: State, navigate: Navigate, meta: Meta): ViewProps {
  const range = presetRange(state.range, meta.dataRange, {
    start: state.start ?? undefined,
    end: state.end ?? undefined,
  })
  return { state, navigate, meta, range }
}
