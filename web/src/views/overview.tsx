// Overview: the headline tiles, MRR (or its breakdown) with the net-new-MRR movements, and the
// waterfall of one period. Every figure is the API's (DashboardOverview, DashboardBreakdown).
import { useMemo } from 'preact/hooks'
import type { Breakdown, BreakdownEntry, Overview as OverviewData, Point, Summary } from '../api'
import type { ViewProps } from '../app'
import { Chart } from '../chart'
import type { Table } from '../csv'
import { useQuery } from '../data'
import { byUnit, money, period, signedPercent, type Unit } from '../format'
import { KIND_COLOURS, KIND_LABELS } from '../palette'
import { KINDS, spec, type Filter, type Kind } from '../url'
import { Status } from './common'

const TOP = 8 // breakdown lines; the API adds one "other" entry for the rest
const NO_VALUE = '(none)' // the API's key for customers or subscriptions without a value

interface Tile {
  field: keyof Point & string
  label: string
  unit: Unit
}

export const TILES: Tile[] = [
  { field: 'mrr', label: 'MRR', unit: 'cents' },
  { field: 'arr', label: 'ARR', unit: 'cents' },
  { field: 'customers', label: 'Customers', unit: 'count' },
  { field: 'arpa', label: 'ARPA', unit: 'cents' },
  { field: 'customerChurnRate', label: 'Customer churn rate', unit: 'rate' },
  { field: 'nrr', label: 'NRR', unit: 'rate' },
  { field: 'ltv', label: 'LTV', unit: 'cents' },
  { field: 'quickRatio', label: 'Quick ratio', unit: 'ratio' },
]

function TileView({ tile, summary, points, currency }: { tile: Tile; summary: Summary; points: Point[]; currency: string }) {
  const option = useMemo(
    () => ({
      aria: { enabled: true, label: { description: `${tile.label} per period` } },
      grid: { left: 0, right: 0, top: 2, bottom: 2 },
      xAxis: { type: 'category', show: false, data: points.map((p) => p.date) },
      yAxis: { type: 'value', show: false, scale: true },
      series: [{ type: 'line', data: points.map((p) => p[tile.field]), showSymbol: false, lineStyle: { width: 2 } }],
    }),
    [points, tile],
  )
  const change = summary.percentageChange
  const trend = change === null ? 'flat' : change > 0 ? 'up' : change < 0 ? 'down' : 'flat'
  return (
    <li class="tile" data-tile={tile.field} data-value={summary.current ?? ''}>
      <h3>{tile.label}</h3>
      <p class="value">{byUnit(summary.current, tile.unit, currency)}</p>
      <p class={`change ${trend}`} data-change={change ?? ''}>
        <span>{signedPercent(change)}</span> <span class="muted">vs previous period ({byUnit(summary.previous, tile.unit, currency)})</span>
      </p>
      <Chart id={`spark-${tile.field}`} title={`${tile.label} trend`} option={option} table={{ columns: [], rows: [] }} height={40} small />
    </li>
  )
}

function mrrTable(points: Point[]): Table {
  return {
    columns: ['date', 'end_date', 'mrr_cents', ...KINDS.map((k) => `${k}_cents`), 'net_new_mrr_cents'],
    rows: points.map((p) => [p.date, p.endDate, p.mrr, ...KINDS.map((k) => p[k]), p.netNewMrr]),
  }
}

function MrrChart({ points, breakdown, currency, interval, onPeriod }: {
  points: Point[]
  breakdown: Breakdown['series']['breakdown'] | null
  currency: string
  interval: string
  onPeriod: (index: number, line: string | null) => void
}) {
  const lines = breakdown ?? [{ label: 'MRR', points, key: ['MRR'], other: false, summary: null }]
  const option = useMemo(
    () => ({
      tooltip: { trigger: 'axis', valueFormatter: (v: number) => money(v, currency) },
      legend: { show: lines.length > 1, type: 'scroll', bottom: 0 },
      grid: { left: 8, right: 16, top: 16, bottom: lines.length > 1 ? 40 : 16, containLabel: true },
      xAxis: { type: 'category', data: points.map((p) => period(p.date, interval)) },
      yAxis: { type: 'value', axisLabel: { formatter: (v: number) => money(v, currency, true) } },
      series: lines.map((line) => ({
        type: 'line',
        name: line.label,
        data: line.points.map((p) => p.mrr),
        showSymbol: line.points.length < 40,
        symbolSize: 7,
      })),
    }),
    [points, breakdown, currency, interval],
  )
  const table: Table = {
    columns: ['date', 'end_date', ...lines.map((l) => `${l.label} mrr_cents`)],
    rows: points.map((p, i) => [p.date, p.endDate, ...lines.map((l) => l.points[i]?.mrr)]),
  }
  return (
    <Chart
      id="mrr"
      title={breakdown ? 'MRR by breakdown' : 'MRR'}
      option={option}
      table={table}
      onClick={({ dataIndex, seriesName }) => onPeriod(dataIndex, breakdown ? seriesName ?? null : null)}
      format={(value, column) => (column < 2 ? String(value) : money(value as number, currency))}
      rowActions={(index) => (
        <button type="button" onClick={() => onPeriod(index, null)}>
          Movements
        </button>
      )}
    />
  )
}

function MovementsChart({ points, currency, interval, onBar }: {
  points: Point[]
  currency: string
  interval: string
  onBar: (index: number, kind: Kind | null) => void
}) {
  const option = useMemo(
    () => ({
      aria: { enabled: true, decal: { show: true } },
      tooltip: { trigger: 'axis', valueFormatter: (v: number) => money(v, currency) },
      legend: { type: 'scroll', bottom: 0 },
      grid: { left: 8, right: 16, top: 16, bottom: 40, containLabel: true },
      xAxis: { type: 'category', data: points.map((p) => period(p.date, interval)) },
      yAxis: { type: 'value', axisLabel: { formatter: (v: number) => money(v, currency, true) } },
      series: [
        ...KINDS.map((kind) => ({
          id: kind,
          type: 'bar',
          name: KIND_LABELS[kind],
          stack: 'movements',
          itemStyle: { color: KIND_COLOURS[kind] },
          data: points.map((p) => p[kind]),
        })),
        { id: 'net', type: 'line', name: 'Net new MRR', data: points.map((p) => p.netNewMrr), itemStyle: { color: '#000000' } },
      ],
    }),
    [points, currency, interval],
  )
  return (
    <Chart
      id="movements"
      title="Net new MRR movements"
      option={option}
      table={mrrTable(points)}
      onClick={({ dataIndex, seriesId }) => onBar(dataIndex, (KINDS as readonly string[]).includes(seriesId ?? '') ? (seriesId as Kind) : null)}
      format={(value, column) => (column < 2 ? String(value) : money(value as number, currency))}
      rowActions={(index) => (
        <span class="kinds">
          {KINDS.map((kind) => (
            <button type="button" onClick={() => onBar(index, kind)} data-drill={kind}>
              {KIND_LABELS[kind]}
            </button>
          ))}
        </span>
      )}
    />
  )
}

function WaterfallChart({ data, currency }: { data: OverviewData['series']['waterfall']; currency: string }) {
  const option = useMemo(
    () => ({
      aria: { enabled: true, decal: { show: true } },
      tooltip: {
        trigger: 'axis',
        axisPointer: { type: 'shadow' },
        formatter: (params: { dataIndex: number }[]) => {
          const step = data.steps[params[0].dataIndex]
          return `${KIND_LABELS[step.kind]}: ${money(step.amount, currency)}`
        },
      },
      grid: { left: 8, right: 16, top: 16, bottom: 16, containLabel: true },
      xAxis: { type: 'category', axisLabel: { interval: 0, rotate: 30 }, data: data.steps.map((s) => KIND_LABELS[s.kind]) },
      yAxis: { type: 'value', axisLabel: { formatter: (v: number) => money(v, currency, true) } },
      series: [
        {
          type: 'bar',
          stack: 'waterfall',
          silent: true,
          itemStyle: { color: 'transparent', decal: { symbol: 'none' } },
          emphasis: { disabled: true },
          data: data.steps.map((s) => s.base),
        },
        {
          type: 'bar',
          stack: 'waterfall',
          name: 'Change',
          data: data.steps.map((s) => ({ value: s.size, itemStyle: { color: KIND_COLOURS[s.kind] } })),
          label: { show: true, position: 'top', formatter: ({ dataIndex }: { dataIndex: number }) => money(data.steps[dataIndex].amount, currency, true) },
        },
      ],
    }),
    [data, currency],
  )
  const table: Table = {
    columns: ['step', 'amount_cents', 'from_cents', 'to_cents'],
    rows: data.steps.map((s) => [s.kind, s.amount, s.start, s.end]),
  }
  return (
    <Chart
      id="waterfall"
      title={`MRR waterfall, ${period(data.date, 'DAY')} – ${period(data.endDate, 'DAY')}`}
      option={option}
      table={table}
      format={(value, column) => (column === 0 ? KIND_LABELS[value as string] : money(value as number, currency))}
    />
  )
}

// A breakdown line as the filter of its scope: its value, or (the "other" line) none of the
// values listed beside it — the API's keys, as they came.
function lineScope(dimension: string, lines: BreakdownEntry[], label: string | null): Filter | null {
  const line = lines.find((entry) => entry.label === label)
  if (!line) return null
  const value = line.key[line.key.length - 1]
  if (value === NO_VALUE) return { field: dimension, op: 'IS_NULL', values: [] }
  if (!line.other) return { field: dimension, op: 'EQ', values: [value] }
  const values = lines.filter((entry) => !entry.other).map((entry) => entry.key[entry.key.length - 1])
  return { field: dimension, op: 'NOT_IN', values }
}

export function Overview({ state, navigate, range }: Pick<ViewProps, 'state' | 'navigate' | 'range'>) {
  const variables = { start: range.start, end: range.end, interval: state.interval, spec: spec(state), period: state.period }
  const overview = useQuery<OverviewData>('DashboardOverview', variables)
  const broken = state.dimension !== null || state.compare.length > 0
  const breakdown = useQuery<Breakdown>(broken ? 'DashboardBreakdown' : null, {
    start: range.start,
    end: range.end,
    interval: state.interval,
    spec: spec(state, true),
    top: state.dimension ? TOP : null,
  })
  return (
    <Status loaded={overview}>
      {({ series }) => {
        const lines = broken && breakdown.data ? breakdown.data.series.breakdown : []
        const drill = (index: number, kind: Kind | null, line: string | null = null) => {
          const point = series.points[index]
          const scope = state.dimension && !state.compare.length ? lineScope(state.dimension, lines, line) : null
          if (point) navigate({ view: 'movements', from: point.date, to: point.endDate, kinds: kind ? [kind] : [], scope })
        }
        return (
          <>
            <h1 class="visually-hidden">Overview</h1>
            <ul class="tiles" aria-label="Headline metrics">
              {TILES.map((tile) => (
                <TileView tile={tile} summary={series[tile.field]} points={series.points} currency={series.currency} />
              ))}
            </ul>
            <div class="charts">
              {broken && breakdown.status === 'error' && (
                <p role="alert" class="error">
                  {breakdown.error.message}
                </p>
              )}
              <MrrChart
                points={series.points}
                breakdown={broken && breakdown.data ? breakdown.data.series.breakdown : null}
                currency={series.currency}
                interval={state.interval}
                onPeriod={(index, line) => drill(index, null, line)}
              />
              <MovementsChart points={series.points} currency={series.currency} interval={state.interval} onBar={drill} />
              <section class="waterfall">
                <label>
                  Waterfall period
                  <select name="period" value={series.waterfall.date} onChange={(e) => navigate({ period: e.currentTarget.value })}>
                    {series.points.map((p) => (
                      <option value={p.date}>{period(p.date, state.interval)}</option>
                    ))}
                  </select>
                </label>
                <WaterfallChart data={series.waterfall} currency={series.currency} />
              </section>
            </div>
          </>
        )
      }}
    </Status>
  )
}
