// Usage: the defined usage metrics; the chosen one per period (or one line per breakdown value
// or compared segment), and the customers with the highest values over the range. Every figure
// is the API's (DashboardUsageMetrics, DashboardUsage).
import { useMemo } from 'preact/hooks'
import type { Usage, UsageMetric, UsageMetrics } from '../api'
import type { ViewProps } from '../app'
import { Chart } from '../chart'
import type { Table } from '../csv'
import { useQuery, type Loaded } from '../data'
import { day, period, usageValue } from '../format'
import { chosenMetric, definition, usageSpec } from '../usage'
import { CustomerLink, Status } from './common'

const TOP = 10

function MetricList({ metrics, chosen, onChoose }: { metrics: UsageMetric[]; chosen: string; onChoose: (id: string) => void }) {
  return (
    <div class="table-scroll">
      <table class="usage-metrics">
        <caption class="visually-hidden">Usage metrics</caption>
        <thead>
          <tr>
            <th scope="col">Metric</th>
            <th scope="col">Aggregation</th>
            <th scope="col">Query type</th>
            <th scope="col">Event</th>
            <th scope="col">Definition</th>
          </tr>
        </thead>
        <tbody>
          {metrics.map((m) => (
            <tr data-metric={m.name} aria-current={m.id === chosen ? 'true' : undefined}>
              <td>
                <a
                  href={`?view=usage&metric=${encodeURIComponent(m.id)}`}
                  aria-current={m.id === chosen ? 'page' : undefined}
                  onClick={(event) => {
                    event.preventDefault()
                    onChoose(m.id)
                  }}
                >
                  {m.name}
                </a>
                {m.description && <div class="muted">{m.description}</div>}
              </td>
              <td>{m.aggregation ?? '—'}</td>
              <td>{m.queryType}</td>
              <td>{m.eventName ?? '—'}</td>
              <td>{definition(m)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}

function UsageChart({ metric, data, interval }: { metric: UsageMetric; data: Usage['usageSeries']; interval: string }) {
  const { points } = data
  const lines = data.breakdown.length ? data.breakdown : [{ key: [metric.name], label: metric.name, points }]
  const option = useMemo(
    () => ({
      tooltip: { trigger: 'axis', valueFormatter: (v: number | null) => usageValue(v) },
      legend: { show: lines.length > 1, type: 'scroll', bottom: 0 },
      grid: { left: 8, right: 16, top: 16, bottom: lines.length > 1 ? 40 : 16, containLabel: true },
      xAxis: { type: 'category', data: points.map((p) => period(p.date, interval)) },
      yAxis: { type: 'value', axisLabel: { formatter: (v: number) => usageValue(v, true) } },
      series: lines.map((line) => ({
        type: 'line',
        name: line.label,
        data: line.points.map((p) => p.value),
        showSymbol: line.points.length < 40,
        symbolSize: 7,
      })),
    }),
    [data, interval],
  )
  const table: Table = {
    columns: ['date', 'end_date', ...lines.map((l) => (data.breakdown.length ? `${l.label} ${metric.name}` : metric.name))],
    rows: points.map((p, i) => [p.date, p.endDate, ...lines.map((l) => l.points[i]?.value ?? null)]),
  }
  return (
    <Chart
      id="usage"
      title={data.breakdown.length ? `${metric.name} by breakdown` : metric.name}
      option={option}
      table={table}
      format={(value, column) => (column < 2 ? String(value) : usageValue(value as number | null))}
    />
  )
}

function TopCustomers({ metric, top, onOpen }: { metric: UsageMetric; top: Usage['usageTop']; onOpen: (id: string) => void }) {
  return (
    <section aria-labelledby="usage-top-title" data-list="usage-top">
      <h2 id="usage-top-title">Top customers by {metric.name}</h2>
      {top.length === 0 ? (
        <p>No customer has a value over this range.</p>
      ) : (
        <div class="table-scroll">
          <table class="usage-top">
            <thead>
              <tr>
                <th scope="col">Rank</th>
                <th scope="col">Customer</th>
                <th scope="col">Country</th>
                <th scope="col">{metric.name}</th>
              </tr>
            </thead>
            <tbody>
              {top.map((rank, index) => (
                <tr data-customer={rank.customerId}>
                  <td class="number">{index + 1}</td>
                  <td>
                    <CustomerLink
                      id={rank.customerId}
                      label={rank.customer ? rank.customer.name ?? rank.customer.externalId : rank.customerId}
                      onOpen={onOpen}
                    />
                  </td>
                  <td>{rank.customer?.country ?? '—'}</td>
                  <td class="number" data-value={rank.value ?? ''}>
                    {usageValue(rank.value)}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}

function Metric({ metric, state, navigate, range }: ViewProps & { metric: UsageMetric }) {
  const { spec, ignored, dimension } = usageSpec(state)
  const loaded: Loaded<Usage> = useQuery<Usage>('DashboardUsage', {
    id: metric.id,
    start: range.start,
    end: range.end,
    interval: state.interval,
    spec,
    first: TOP,
  })
  const open = (customer: string) => navigate({ view: 'customer', customer })
  return (
    <>
      {ignored.length > 0 && (
        <p class="note" role="status">
          Usage metrics cannot be filtered by{' '}
          {ignored.map((f) => f.field).join(', ')}: {ignored.length === 1 ? 'that filter is' : 'those filters are'} left out here.
        </p>
      )}
      {state.dimension && !dimension && (
        <p class="note" role="status">
          Usage metrics cannot be broken down by {state.dimension}: showing the total.
        </p>
      )}
      <Status loaded={loaded}>
        {({ usageSeries, usageTop }) => (
          <div class="charts">
            <UsageChart metric={metric} data={usageSeries} interval={state.interval} />
            <TopCustomers metric={metric} top={usageTop} onOpen={open} />
          </div>
        )}
      </Status>
    </>
  )
}

export function UsageView(props: ViewProps) {
  const { state, navigate, range } = props
  const loaded = useQuery<UsageMetrics>('DashboardUsageMetrics', {})
  return (
    <section aria-labelledby="usage-view-title">
      <h1 id="usage-view-title">
        Usage, {day(range.start)} – {day(range.end)}
      </h1>
      <Status loaded={loaded}>
        {({ usageMetrics }) => {
          const metric = chosenMetric(usageMetrics, state.metric)
          if (!metric) {
            return (
              <p class="empty" data-empty="usage">
                No usage metrics are defined yet. Send usage events (<code>POST /events</code>) and define
                a metric with the <code>createUsageMetric</code> mutation in GraphiQL; it then shows here.
              </p>
            )
          }
          return (
            <>
              <MetricList metrics={usageMetrics} chosen={metric.id} onChoose={(id) => navigate({ metric: id })} />
              <Metric {...props} metric={metric} />
            </>
          )
        }}
      </Status>
    </section>
  )
}
