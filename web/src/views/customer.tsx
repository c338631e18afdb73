// A customer's page: MRR over time, subscriptions, activities, attributes.
import { useMemo } from 'preact/hooks'
import type { Customer, CustomerUsage, UsageMetric, UsageMetrics } from '../api'
import type { ViewProps } from '../app'
import { Chart } from '../chart'
import { useQuery } from '../data'
import { day, money, period, usageValue } from '../format'
import { KIND_LABELS } from '../palette'
import { monthTimeframe, slotChunks, slotValue, slotVariables, type Timeframe } from '../usage'
import { Status } from './common'

type Facts = Customer['customer']

function MrrOverTime({ customer, interval, currency }: { customer: Facts; interval: string; currency: string }) {
  const points = customer.mrrSeries
  const option = useMemo(
    () => ({
      tooltip: { trigger: 'axis', valueFormatter: (v: number) => money(v, currency) },
      grid: { left: 8, right: 16, top: 16, bottom: 16, containLabel: true },
      xAxis: { type: 'category', data: points.map((p) => period(p.date, interval)) },
      yAxis: { type: 'value', axisLabel: { formatter: (v: number) => money(v, currency, true) } },
      series: [{ type: 'line', step: 'end', name: 'MRR', data: points.map((p) => p.mrr) }],
    }),
    [points, currency, interval],
  )
  return (
    <Chart
      id="customer-mrr"
      title="MRR over time"
      option={option}
      table={{ columns: ['date', 'end_date', 'mrr_cents'], rows: points.map((p) => [p.date, p.endDate, p.mrr]) }}
      format={(value, column) => (column < 2 ? String(value) : money(value as number, currency))}
    />
  )
}

// The rows of up to USAGE_SLOTS metrics: one request.
function UsageRows({ customer, metrics, timeframe }: { customer: string; metrics: UsageMetric[]; timeframe: Timeframe }) {
  const loaded = useQuery<CustomerUsage>('DashboardCustomerUsage', {
    id: customer,
    timeframe,
    ...slotVariables(metrics.map((m) => m.id)),
  })
  return (
    <>
      {metrics.map((metric, slot) => {
        const value = loaded.data ? slotValue(loaded.data.customer, slot) : undefined
        return (
          <tr data-metric={metric.name}>
            <th scope="row">{metric.name}</th>
            <td>{metric.queryType}</td>
            {loaded.status === 'error' ? (
              <td role="alert" class="error">
                {loaded.error.message}
              </td>
            ) : (
              <td class="number" data-value={loaded.status === 'ready' ? value ?? '' : undefined} aria-busy={loaded.status === 'loading'}>
                {loaded.status === 'ready' ? usageValue(value) : '…'}
              </td>
            )}
          </tr>
        )
      })}
    </>
  )
}

// Its value of every defined usage metric over the current month (UTC), 8 metrics a request.
function CustomerUsageSection({ customer, today }: { customer: string; today: string }) {
  const metrics = useQuery<UsageMetrics>('DashboardUsageMetrics', {})
  const timeframe = monthTimeframe(today)
  return (
    <section aria-labelledby="customer-usage-title" data-list="customer-usage">
      <h2 id="customer-usage-title">Usage this month ({period(today, 'MONTH')})</h2>
      <Status loaded={metrics}>
        {({ usageMetrics }) =>
          usageMetrics.length === 0 ? (
            <p>No usage metrics are defined.</p>
          ) : (
            <div class="table-scroll">
              <table class="customer-usage">
                <thead>
                  <tr>
                    <th scope="col">Metric</th>
                    <th scope="col">Query type</th>
                    <th scope="col">Value</th>
                  </tr>
                </thead>
                <tbody>
                  {slotChunks(usageMetrics).map((metrics) => (
                    <UsageRows customer={customer} metrics={metrics} timeframe={timeframe} />
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Status>
    </section>
  )
}

export function CustomerView({ state, navigate, range, meta }: ViewProps) {
  const loaded = useQuery<Customer>(state.customer ? 'DashboardCustomer' : null, {
    id: state.customer,
    start: range.start,
    end: range.end,
    interval: state.interval,
  })
  if (!state.customer) return <p>No customer chosen: open one from a drill-down or the churn lists.</p>
  return (
    <Status loaded={loaded}>
      {({ customer }) => {
        const currency = customer.currency ?? meta.dataRange.baseCurrency
        return (
          <article class="customer" aria-labelledby="customer-title">
            <h1 id="customer-title">{customer.name ?? customer.externalId}</h1>
            <p>
              <button type="button" onClick={() => window.history.back()}>
                Back
              </button>{' '}
              <button type="button" onClick={() => navigate({ view: 'overview', customer: null })}>
                Overview
              </button>
            </p>
            <dl class="facts">
              <dt>Status</dt>
              <dd data-fact="status">{customer.status}</dd>
              <dt>MRR</dt>
              <dd data-fact="mrr">{money(customer.mrr, currency)}</dd>
              <dt>ARR</dt>
              <dd>{money(customer.arr, currency)}</dd>
              <dt>Customer since</dt>
              <dd>{customer.customerSince ? day(customer.customerSince) : '—'}</dd>
              {customer.churnedAt && (
                <>
                  <dt>Churned</dt>
                  <dd>
                    {day(customer.churnedAt)} ({money(customer.churnedMrr, currency)})
                  </dd>
                </>
              )}
              <dt>External id</dt>
              <dd>{customer.externalId}</dd>
              <dt>Email</dt>
              <dd>{customer.email ?? '—'}</dd>
              <dt>Country</dt>
              <dd>{customer.country ?? '—'}</dd>
            </dl>
            <MrrOverTime customer={customer} interval={state.interval} currency={currency} />
            <h2>Subscriptions</h2>
            <div class="table-scroll">
              <table>
                <thead>
                  <tr>
                    <th scope="col">Plan</th>
                    <th scope="col">Quantity</th>
                    <th scope="col">Interval</th>
                    <th scope="col">Status</th>
                    <th scope="col">MRR</th>
                    <th scope="col">Started</th>
                    <th scope="col">Ended</th>
                  </tr>
                </thead>
                <tbody>
                  {customer.subscriptions.map((s) => (
                    <tr>
                      <td>{s.plan ?? '—'}</td>
                      <td class="number">{s.quantity}</td>
                      <td>{s.interval}</td>
                      <td>{s.status}</td>
                      <td class="number">{money(s.mrr, s.currency)}</td>
                      <td>{day(s.started)}</td>
                      <td>{s.ended ? day(s.ended) : '—'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
            <h2>Activities</h2>
            <ol class="activities">
              {customer.activities.map((a) => (
                <li>
                  <time dateTime={a.day}>{day(a.day)}</time> <strong>{KIND_LABELS[a.kind] ?? a.kind}</strong> {a.description}:{' '}
                  {money(a.amount, currency)} (MRR {money(a.mrrBefore, currency)} → {money(a.mrrAfter, currency)})
                </li>
              ))}
            </ol>
            <CustomerUsageSection customer={customer.id} today={meta.dataRange.today} />
            <h2>Attributes</h2>
            {customer.attributes.length === 0 ? (
              <p>No attributes.</p>
            ) : (
              <dl class="facts">
                {customer.attributes.map((a) => (
                  <>
                    <dt>{a.key}</dt>
                    <dd>{a.text}</dd>
                  </>
                ))}
              </dl>
            )}
          </article>
        )
      }}
    </Status>
  )
}
