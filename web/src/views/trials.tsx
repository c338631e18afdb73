// Trials: the funnel of the range and trials per period with their conversion rate.
import { useMemo } from 'preact/hooks'
import type { Trials } from '../api'
import type { ViewProps } from '../app'
import { Chart } from '../chart'
import { useQuery } from '../data'
import { count, percent, period } from '../format'
import { PALETTE } from '../palette'
import { spec } from '../url'
import { Status } from './common'

type Data = Trials['trials']

function Funnel({ funnel }: { funnel: Data['funnel'] }) {
  const steps: [string, number][] = [
    ['Started', funnel.started],
    ['Converted', funnel.converted],
    ['Expired', funnel.expired],
    ['In progress', funnel.inProgress],
  ]
  const option = useMemo(
    () => ({
      tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
      grid: { left: 8, right: 48, top: 8, bottom: 8, containLabel: true },
      xAxis: { type: 'value', axisLabel: { formatter: (v: number) => count(v, true) } },
      yAxis: { type: 'category', inverse: true, data: steps.map(([label]) => label) },
      series: [
        {
          type: 'bar',
          name: 'Trials',
          data: steps.map(([, value], i) => ({ value, itemStyle: { color: PALETTE[i] } })),
          label: { show: true, position: 'right', formatter: ({ value }: { value: number }) => count(value) },
        },
      ],
    }),
    [funnel],
  )
  return (
    <Chart
      id="trial-funnel"
      title={`Trial funnel: ${percent(funnel.conversionRate)} converted`}
      option={option}
      table={{
        columns: ['started', 'converted', 'expired', 'in_progress', 'conversion_rate'],
        rows: [[funnel.started, funnel.converted, funnel.expired, funnel.inProgress, funnel.conversionRate]],
      }}
      height={220}
      format={(value, column) => (column === 4 ? percent(value as number | null) : count(value as number))}
    />
  )
}

function Conversion({ points, interval }: { points: Data['points']; interval: string }) {
  const option = useMemo(
    () => ({
      aria: { enabled: true, decal: { show: true } },
      tooltip: { trigger: 'axis' },
      legend: { bottom: 0 },
      grid: { left: 8, right: 8, top: 36, bottom: 40, containLabel: true },
      xAxis: { type: 'category', data: points.map((p) => period(p.date, interval)) },
      yAxis: [
        { type: 'value', name: 'Trials', axisLabel: { formatter: (v: number) => count(v, true) } },
        { type: 'value', name: 'Conversion', min: 0, max: 1, axisLabel: { formatter: (v: number) => percent(v, 0) } },
      ],
      series: [
        { type: 'bar', name: 'Started', data: points.map((p) => p.trialsStarted) },
        { type: 'bar', name: 'Converted', data: points.map((p) => p.trialsConverted) },
        { type: 'bar', name: 'Expired', data: points.map((p) => p.trialsExpired) },
        {
          type: 'line',
          name: 'Conversion rate',
          yAxisIndex: 1,
          data: points.map((p) => p.conversionRate),
          tooltip: { valueFormatter: (v: number | null) => percent(v) },
        },
      ],
    }),
    [points, interval],
  )
  return (
    <Chart
      id="trials"
      title="Trials and conversion per period"
      option={option}
      table={{
        columns: ['date', 'end_date', 'started', 'converted', 'expired', 'conversion_rate'],
        rows: points.map((p) => [p.date, p.endDate, p.trialsStarted, p.trialsConverted, p.trialsExpired, p.conversionRate]),
      }}
      format={(value, column) => (column < 2 ? String(value) : column === 5 ? percent(value as number | null) : count(value as number))}
    />
  )
}

export function TrialsView({ state, range }: ViewProps) {
  const loaded = useQuery<Trials>('DashboardTrials', { start: range.start, end: range.end, interval: state.interval, spec: spec(state) })
  return (
    <section aria-labelledby="trials-title">
      <h1 id="trials-title">Trials</h1>
      <Status loaded={loaded}>
        {({ trials }) => (
          <div class="charts">
            <Funnel funnel={trials.funnel} />
            <Conversion points={trials.points} interval={state.interval} />
          </div>
        )}
      </Status>
    </section>
  )
}
