// Drill-down: the movements (and their customers) behind a chart's point or bar.
import { useState } from 'preact/hooks'
import type { Movements } from '../api'
import type { ViewProps } from '../app'
import { useQuery } from '../data'
import { count, day, money } from '../format'
import { KIND_LABELS } from '../palette'
import { spec } from '../url'
import { CustomerLink, Pager, Status } from './common'

const PAGE = 50

export function MovementsView({ state, navigate, range, meta }: ViewProps) {
  const currency = state.currency ?? meta.dataRange.baseCurrency
  const [cursors, setCursors] = useState<(string | null)[]>([null])
  const from = state.from ?? range.start
  const to = state.to ?? range.end
  const kinds = state.kinds.length ? state.kinds : null
  const loaded = useQuery<Movements>('DashboardMovements', {
    start: from,
    end: to,
    kinds,
    spec: { ...spec(state), filters: state.scope ? [...state.filters, state.scope] : state.filters },
    first: PAGE,
    after: cursors[cursors.length - 1],
  })
  const kindsText = kinds ? kinds.map((k) => KIND_LABELS[k]).join(', ') : 'All movements'
  const scope = state.scope
  const what = scope ? `${kindsText} of ${scope.field} ${scope.op === 'EQ' ? '' : 'other than '}${scope.values.join(', ')}` : kindsText
  return (
    <section aria-labelledby="movements-title">
      <h1 id="movements-title">
        {what}, {day(from)} – {day(to)}
      </h1>
      <p>
        <button type="button" onClick={() => navigate({ view: 'overview', scope: null })}>
          Back to the overview
        </button>
      </p>
      <Status loaded={loaded}>
        {({ movements }) => (
          <>
            <p class="totals" data-total-count={movements.totalCount} data-total-amount={movements.totalAmount}>
              {count(movements.totalCount)} movements, {money(movements.totalAmount, currency)} in all
            </p>
            <MovementTable events={movements.events} currency={currency} onOpen={(customer) => navigate({ view: 'customer', customer })} />
            <Pager
              label="Movements"
              page={cursors.length - 1}
              hasNext={movements.pageInfo.hasNextPage}
              onPrevious={() => setCursors(cursors.slice(0, -1))}
              onNext={() => setCursors([...cursors, movements.pageInfo.endCursor])}
            />
          </>
        )}
      </Status>
    </section>
  )
}

export function MovementTable({
  events,
  currency,
  onOpen,
}: {
  events: Movements['movements']['events']
  currency: string
  onOpen: (id: string) => void
}) {
  const amount = (cents: number) => money(cents, currency)
  return (
    <div class="table-scroll">
      <table class="movements">
        <thead>
          <tr>
            <th scope="col">Customer</th>
            <th scope="col">Day</th>
            <th scope="col">Kind</th>
            <th scope="col">Amount</th>
            <th scope="col">MRR before</th>
            <th scope="col">Plans</th>
          </tr>
        </thead>
        <tbody>
          {events.map((event) => (
            <tr>
              <td>
                <CustomerLink id={event.customerId} label={event.name ?? event.externalId} onOpen={onOpen} />
              </td>
              <td>{day(event.day)}</td>
              <td>{KIND_LABELS[event.kind] ?? event.kind}</td>
              <td class="number">{amount(event.amount)}</td>
              <td class="number">{amount(event.mrrBefore)}</td>
              <td>{event.plans.join(', ')}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}
