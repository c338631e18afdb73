// Churn: the customers who churned and every revenue-churn movement, each paginated.
import { useState } from 'preact/hooks'
import type { Churn } from '../api'
import type { ViewProps } from '../app'
import { useQuery } from '../data'
import { count, day, money } from '../format'
import { spec } from '../url'
import { Pager, Status } from './common'
import { MovementTable } from './movements'

const PAGE = 25

export function ChurnView({ state, navigate, range }: ViewProps) {
  const [logo, setLogo] = useState<(string | null)[]>([null])
  const [revenue, setRevenue] = useState<(string | null)[]>([null])
  const loaded = useQuery<Churn>('DashboardChurn', {
    start: range.start,
    end: range.end,
    spec: spec(state),
    first: PAGE,
    logoAfter: logo[logo.length - 1],
    revenueAfter: revenue[revenue.length - 1],
  })
  const open = (customer: string) => navigate({ view: 'customer', customer })
  return (
    <section aria-labelledby="churn-title">
      <h1 id="churn-title">
        Churn, {day(range.start)} – {day(range.end)}
      </h1>
      <Status loaded={loaded}>
        {({ churn }) => (
          <div class="two">
            <section aria-labelledby="logo-title" data-list="churned">
              <h2 id="logo-title">Churned customers</h2>
              <p class="totals" data-total-count={churn.churnedCustomers.totalCount}>
                {count(churn.churnedCustomers.totalCount)} customers, {money(churn.churnedCustomers.totalAmount, churn.currency)} MRR lost
              </p>
              <MovementTable events={churn.churnedCustomers.events} currency={churn.currency} onOpen={open} />
              <Pager
                label="Churned customers"
                page={logo.length - 1}
                hasNext={churn.churnedCustomers.pageInfo.hasNextPage}
                onPrevious={() => setLogo(logo.slice(0, -1))}
                onNext={() => setLogo([...logo, churn.churnedCustomers.pageInfo.endCursor])}
              />
            </section>
            <section aria-labelledby="revenue-title" data-list="revenue">
              <h2 id="revenue-title">Revenue churn (churn and contraction)</h2>
              <p class="totals" data-total-count={churn.revenueChurn.totalCount}>
                {count(churn.revenueChurn.totalCount)} events, {money(churn.revenueChurn.totalAmount, churn.currency)}
              </p>
              <MovementTable events={churn.revenueChurn.events} currency={churn.currency} onOpen={open} />
              <Pager
                label="Revenue churn"
                page={revenue.length - 1}
                hasNext={churn.revenueChurn.pageInfo.hasNextPage}
                onPrevious={() => setRevenue(revenue.slice(0, -1))}
                onNext={() => setRevenue([...revenue, churn.revenueChurn.pageInfo.endCursor])}
              />
            </section>
          </div>
        )}
      </Status>
    </section>
  )
}
