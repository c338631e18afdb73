// Cohorts: the retention matrix as a heat map (customers or MRR), with each cohort's LTV.
import { useMemo } from 'preact/hooks'
import type { Cohorts } from '../api'
import type { ViewProps } from '../app'
import { Chart } from '../chart'
import type { Table } from '../csv'
import { useQuery } from '../data'
import { count, money, month, percent } from '../format'
import { spec } from '../url'
import { Status } from './common'

// A sequential, colour-blind-safe ramp (light to dark blue); the label in each cell is the value.
const RAMP = ['#f7fbff', '#c6dbef', '#6baed6', '#2171b5', '#08306b']

function Matrix({ cohorts, mrr, currency }: { cohorts: Cohorts['cohorts']; mrr: boolean; currency: string }) {
  const offsets = Math.max(0, ...cohorts.map((c) => c.cells.length))
  const option = useMemo(
    () => ({
      tooltip: {
        formatter: ({ data }: { data: [number, number, number | null] }) => {
          const cohort = cohorts[data[1]]
          const cell = cohort.cells[data[0]]
          const active = mrr ? money(cell.mrr, currency) : `${count(cell.activeCustomers)} customers`
          return `${month(cohort.cohort)} cohort, month ${cell.offset}: ${percent(data[2])} (${active})`
        },
      },
      grid: { left: 8, right: 16, top: 8, bottom: 56, containLabel: true },
      xAxis: { type: 'category', name: 'Months since joining', nameLocation: 'middle', nameGap: 28, data: Array.from({ length: offsets }, (_, i) => String(i)) },
      yAxis: { type: 'category', inverse: true, data: cohorts.map((c) => month(c.cohort)) },
      visualMap: { min: 0, max: 1, show: false, inRange: { color: RAMP } },
      series: [
        {
          type: 'heatmap',
          name: mrr ? 'MRR retention' : 'Customer retention',
          data: cohorts.flatMap((c, y) => c.cells.map((cell) => [cell.offset, y, mrr ? cell.mrrRetention : cell.customerRetention])),
          label: {
            show: offsets <= 18,
            fontSize: 10,
            formatter: ({ data }: { data: [number, number, number | null] }) => percent(data[2], 0),
          },
        },
      ],
    }),
    [cohorts, mrr, currency],
  )
  const table: Table = {
    columns: ['cohort', 'size', 'ltv_cents', 'offset', 'month', 'active_customers', 'mrr_cents', 'customer_retention', 'mrr_retention'],
    rows: cohorts.flatMap((c) =>
      c.cells.map((cell) => [c.cohort, c.size, c.ltv, cell.offset, cell.month, cell.activeCustomers, cell.mrr, cell.customerRetention, cell.mrrRetention]),
    ),
  }
  return (
    <Chart
      id="cohorts"
      title={mrr ? 'MRR retention by cohort' : 'Customer retention by cohort'}
      option={option}
      table={table}
      height={Math.max(240, 28 * cohorts.length + 80)}
      format={(value, column) => {
        if (value === null || value === undefined) return '—'
        if (column === 2 || column === 6) return money(value as number, currency)
        if (column >= 7) return percent(value as number)
        return String(value)
      }}
    />
  )
}

export function CohortsView({ state, navigate, range, meta }: ViewProps) {
  const loaded = useQuery<Cohorts>('DashboardCohorts', { start: range.start, end: range.end, spec: spec(state) })
  const currency = state.currency ?? meta.dataRange.baseCurrency
  const mrr = state.cohorts === 'mrr'
  return (
    <section aria-labelledby="cohorts-title">
      <h1 id="cohorts-title">Retention cohorts</h1>
      <fieldset class="toggle">
        <legend>Retention of</legend>
        <label class="check">
          <input type="radio" name="cohorts" checked={!mrr} onChange={() => navigate({ cohorts: 'customers' })} /> Customers
        </label>
        <label class="check">
          <input type="radio" name="cohorts" checked={mrr} onChange={() => navigate({ cohorts: 'mrr' })} /> MRR
        </label>
      </fieldset>
      <Status loaded={loaded}>
        {({ cohorts }) =>
          cohorts.length === 0 ? (
            <p>No cohort in this range.</p>
          ) : (
            <>
              <Matrix cohorts={cohorts} mrr={mrr} currency={currency} />
              <h2>Cohort LTV</h2>
              <div class="table-scroll">
                <table data-table="cohort-ltv">
                  <thead>
                    <tr>
                      <th scope="col">Cohort</th>
                      <th scope="col">Customers</th>
                      <th scope="col">Realized LTV per customer</th>
                    </tr>
                  </thead>
                  <tbody>
                    {cohorts.map((c) => (
                      <tr>
                        <th scope="row">{month(c.cohort)}</th>
                        <td class="number">{count(c.size)}</td>
                        <td class="number">{money(c.ltv, currency)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            </>
          )
        }
      </Status>
    </section>
  )
}
