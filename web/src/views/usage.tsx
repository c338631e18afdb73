// Usage: the defined usage metrics; the chosen one per period (or one line per breakdown value
// or compared segment), and the customers with the highest values over the range. Every figure
// is the API's (DashboardUsageMetrics, DashboardUsage).
import { useMemo } from 'preact/hooks'
import type { Usage, UsageMetric, UsageMetrics, UsagePoint } from '../api'
import type { ViewProps } from '../app'
import { Chart } from '../chart'
import type { Table } from '../csv'
import { useQuery } from '../data'
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

type Line = { label: string; points: UsagePoint[] }

// The chart's lines: the breakdown's entries, or the one total.
function linesOf(series: Usage['usageSeries'], broken: boolean, name: string): Line[] {
  return broken ? series.breakdown ?? [] : [{ label: name, points: series.points ?? [] }]
}

function UsageChart({ metric, series, broken, interval }: {
  metric: UsageMetric
  series: Usage['usageSeries']
  broken: boolean
  interval: string
}) {
  const lines = useMemo(() => linesOf(series, broken, metric.name), [series, broken, metric.name])
  const dates = lines[0]?.points ?? []
  const option = useMemo(
    () => ({
      tooltip: { trigger: 'axis', valueFormatter: (v: number | null) => usageValue(v) },
      legend: { show: lines.length > 1, type: 'scroll', bottom: 0 },
      grid: { left: 8, right: 16, top: 16, bottom: lines.length > 1 ? 40 : 16, containLabel: true },
      xAxis: { type: 'category', data: dates.map((p) => period(p.date, interval)) },
      yAxis: { type: 'value', axisLabel: { formatter: (v: number) => usageValue(v, true) } },
      series: lines.map((line) => ({
        type: 'line',
        name: line.label,
        data: line.points.map((p) => p.value),
        showSymbol: line.points.length < 40,
        symbolSize: 7,
      })),
    }),
    [lines, interval],
  )
  const table: Table = {
    columns: ['date', 'end_date', ...lines.map((l) => (broken ? `${l.label} ${metric.name}` : metric.name))],
    rows: dates.map((p, i) => [p.date, p.endDate, ...lines.map((l) => l.points[i]?.value ?? null)]),
  }
  return (
    <Chart
      id="usage"
      title={broken ? `${metric.name} by breakdown` : metric.name}
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

export function UsageView({ state, navigate, range }: ViewProps) {
  const list = useQuery<UsageMetrics>('DashboardUsageMetrics', {})
  const metrics = list.data?.usageMetrics
  const metric = metrics ? chosenMetric(metrics, state.metric) : null
  // A metric named in the URL is asked for at once, beside the list; else the list's first.
  const id = metrics ? metric?.id ?? null : state.metric
  const { spec, ignored, dimension, broken } = usageSpec(state)
  const usage = useQuery<Usage>(id === null ? null : 'DashboardUsage', {
    id,
    start: range.start,
    end: range.end,
    interval: state.interval,
    spec,
    broken,
    first: TOP,
  })
  const open = (customer: string) => navigate({ view: 'customer', customer })
  return (
    <section aria-labelledby="usage-view-title">
      <h1 id="usage-view-title">
        Usage, {day(range.start)} – {day(range.end)}
      </h1>
      <Status loaded={list}>
        {({ usageMetrics }) =>
          !metric ? (
            <p class="empty" data-empty="usage">
              No usage metrics are defined yet. Send usage events (<code>POST /events</code>) and define
              a metric with the <code>createUsageMetric</code> mutation in GraphiQL; it then shows here.
            </p>
          ) : (
            <>
              <MetricList metrics={usageMetrics} chosen={metric.id} onChoose={(chosen) => navigate({ metric: chosen })} />
              {ignored.length > 0 && (
                <p class="note" role="status">
                  Usage metrics cannot be filtered by {ignored.map((f) => f.field).join(', ')}:{' '}
                  {ignored.length === 1 ? 'that filter is' : 'those filters are'} left out here.
                </p>
              )}
              {state.dimension && !dimension && (
                <p class="note" role="status">
                  Usage metrics cannot be broken down by {state.dimension}: showing the total.
                </p>
              )}
              <Status loaded={usage}>
                {({ usageSeries, usageTop }) => {
                  const lines = linesOf(usageSeries, broken, metric.name)
                  return (
                    <div class="charts">
                      {lines.length ? (
                        <UsageChart metric={metric} series={usageSeries} broken={broken} interval={state.interval} />
                      ) : (
                        <p data-empty="usage-breakdown">No {metric.name} over this range to break down.</p>
                      )}
                      <TopCustomers metric={metric} top={usageTop} onOpen={open} />
                    </div>
                  )
                }}
              </Status>
            </>
          )
        }
      </Status>
    </section>
  )
}
