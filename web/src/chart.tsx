// A chart with its data: an ECharts canvas (labelled, patterned for colour-blind readers), a
// data table (the same rows, for keyboards and screen readers), and its exports: CSV of the
// API's values and PNG of the picture.
import type { ComponentChildren } from 'preact'
import { useEffect, useRef } from 'preact/hooks'
import { toCsv, type Table } from './csv'
import type { Option } from './echarts'
import { PALETTE } from './palette'

// ECharts is its own chunk, fetched as soon as the app starts: the app's first queries leave
// while it downloads and compiles.
const library = import('./echarts').then((module) => module.echarts)
type ECharts = ReturnType<Awaited<typeof library>['init']>

export interface ChartClick {
  dataIndex: number
  seriesId?: string
  seriesName?: string
}

interface Props {
  id: string
  title: string
  option: Option
  table: Table
  height?: number
  onClick?: (click: ChartClick) => void
  rowActions?: (index: number) => ComponentChildren
  format?: (value: unknown, column: number) => string // the data table's display of a cell
  small?: boolean // a sparkline: no title, no table, no exports
}

function save(filename: string, href: string) {
  const link = document.createElement('a')
  link.href = href
  link.download = filename
  document.body.appendChild(link)
  link.click()
  link.remove()
}

export function exportCsv(id: string, table: Table) {
  const url = URL.createObjectURL(new Blob([toCsv(table)], { type: 'text/csv' }))
  save(`tidemill-${id}.csv`, url)
  setTimeout(() => URL.revokeObjectURL(url), 1000)
}

// Patterns (decals) tell bars apart without colour; lines need none (and cost drawing time).
const BASE: Option = {
  animation: false,
  color: PALETTE,
  aria: { enabled: true, decal: { show: false } },
  textStyle: { fontFamily: 'system-ui, sans-serif', color: '#1f2933' },
}

export function Chart({ id, title, option, table, height = 300, onClick, rowActions, format, small }: Props) {
  const element = useRef<HTMLDivElement>(null)
  const instance = useRef<ECharts | null>(null)
  const latest = useRef(option)
  latest.current = option
  const clicked = useRef(onClick)
  clicked.current = onClick

  useEffect(() => {
    let disposed = false
    let cleanup = () => {
      disposed = true
    }
    library.then((echarts) => {
      if (!disposed && element.current) cleanup = mount(echarts, element.current)
    })
    return () => cleanup()
  }, [])

  const mount = (echarts: Awaited<typeof library>, node: HTMLDivElement) => {
    const chart = echarts.init(node, undefined, { renderer: 'canvas' })
    instance.current = chart
    chart.on('click', (params) => {
      const { dataIndex, seriesId, seriesName } = params as ChartClick
      clicked.current?.({ dataIndex, seriesId, seriesName })
    })
    chart.on('finished', () => {
      node.setAttribute('data-rendered', 'true')
      performance.mark(`tidemill:drawn:${id}`) // what the bench's first-load figure reads
    })
    let width = node.clientWidth
    const observer = new ResizeObserver(() => {
      if (node.clientWidth === width) return // the first call, and height-only changes
      width = node.clientWidth
      chart.resize()
    })
    observer.observe(node)
    draw(chart, latest.current)
    return () => {
      observer.disconnect()
      chart.dispose()
      instance.current = null
    }
  }

  const draw = (chart: ECharts, current: Option) => {
    const paint = () => {
      if (chart.isDisposed()) return
      element.current?.removeAttribute('data-rendered')
      chart.setOption({ ...BASE, ...current }, true)
    }
    if (small) setTimeout(paint, 0) // sparklines after the main charts
    else paint()
  }

  useEffect(() => {
    if (instance.current) draw(instance.current, option)
  }, [option])

  const png = () => {
    const url = instance.current?.getDataURL({ type: 'png', pixelRatio: 2, backgroundColor: '#ffffff' })
    if (url) save(`tidemill-${id}.png`, url)
  }

  const canvas = (
    <div
      ref={element}
      class="canvas"
      data-chart={id}
      role="img"
      aria-label={title}
      style={{ height: `${height}px` }}
    />
  )
  if (small) return canvas
  return (
    <figure class="chart" aria-labelledby={`${id}-title`}>
      <figcaption>
        <h3 id={`${id}-title`}>{title}</h3>
        <span class="exports">
          <button type="button" onClick={() => exportCsv(id, table)} data-export="csv">
            CSV
          </button>
          <button type="button" onClick={png} data-export="png">
            PNG
          </button>
        </span>
      </figcaption>
      {canvas}
      <details>
        <summary>Data table</summary>
        <DataTable table={table} rowActions={rowActions} caption={title} format={format} />
      </details>
    </figure>
  )
}

export function DataTable({
  table,
  caption,
  rowActions,
  format,
}: {
  table: Table
  caption: string
  rowActions?: (index: number) => ComponentChildren
  format?: (value: unknown, column: number) => string
}) {
  return (
    <div class="table-scroll">
      <table>
        <caption class="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            {table.columns.map((column) => (
              <th scope="col">{column}</th>
            ))}
            {rowActions && <th scope="col">Details</th>}
          </tr>
        </thead>
        <tbody>
          {table.rows.map((row, index) => (
            <tr>
              {row.map((cell, column) => (
                <td>{format ? format(cell, column) : cell === null || cell === undefined ? '—' : String(cell)}</td>
              ))}
              {rowActions && <td>{rowActions(index)}</td>}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  )
}
