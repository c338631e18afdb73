// The controls every view shares, all kept in the URL: range, interval, currency, breakdown,
// filters, segment and compared segments.
import { useState } from 'preact/hooks'
import type { ViewProps } from './app'
import { usageDimension, usageFilterable } from './usage'
import { INTERVALS, MAX_COMPARED, PRESETS, type Filter, type Interval, type Preset } from './url'

const PRESET_LABELS: Record<Preset, string> = {
  '3m': 'Last 3 months',
  '6m': 'Last 6 months',
  '12m': 'Last 12 months',
  ytd: 'Year to date',
  all: 'All time',
  custom: 'Custom',
}
const CURRENCIES = ['USD', 'EUR', 'GBP', 'CAD', 'AUD', 'CHF', 'JPY', 'SEK']
const NO_VALUE_OPS = ['IS_NULL', 'IS_NOT_NULL']

function FilterForm({ fields, onAdd }: { fields: { name: string; ops: string[] }[]; onAdd: (f: Filter) => void }) {
  const [picked, setField] = useState(fields[0]?.name ?? '')
  // The fields offered change with the view (usage metrics take fewer): keep a valid one.
  const field = fields.some((f) => f.name === picked) ? picked : fields[0]?.name ?? ''
  const ops = fields.find((f) => f.name === field)?.ops ?? ['EQ']
  const [op, setOp] = useState('EQ')
  const [values, setValues] = useState('')
  const chosenOp = ops.includes(op) ? op : ops[0]
  const submit = (event: Event) => {
    event.preventDefault()
    const list = NO_VALUE_OPS.includes(chosenOp) ? [] : values.split(',').map((v) => v.trim()).filter(Boolean)
    onAdd({ field, op: chosenOp, values: list })
    setValues('')
  }
  return (
    <form class="filter-form" onSubmit={submit} aria-label="Add a filter">
      <label>
        Field
        <select value={field} onChange={(e) => setField(e.currentTarget.value)}>
          {fields.map((f) => (
            <option value={f.name}>{f.name}</option>
          ))}
        </select>
      </label>
      <label>
        Operator
        <select value={chosenOp} onChange={(e) => setOp(e.currentTarget.value)}>
          {ops.map((o) => (
            <option value={o}>{o}</option>
          ))}
        </select>
      </label>
      <label>
        Values (comma-separated)
        <input value={values} onInput={(e) => setValues(e.currentTarget.value)} disabled={NO_VALUE_OPS.includes(chosenOp)} />
      </label>
      <button type="submit">Add filter</button>
    </form>
  )
}

export function Controls({ state, navigate, meta, range }: ViewProps) {
  const mrr = meta.metrics.find((m) => m.name === 'mrr')
  // The usage view offers what usage metrics can be sliced and filtered by (no currency).
  const usage = state.view === 'usage'
  const dimensions = (mrr?.dimensions ?? []).filter((d) => !usage || usageDimension(d.name))
  const fields = (mrr?.filters ?? []).filter((f) => !usage || usageFilterable(f.name))
  const toggleCompare = (id: string, on: boolean) => {
    const compare = on ? [...state.compare, id].slice(0, MAX_COMPARED) : state.compare.filter((c) => c !== id)
    navigate({ compare })
  }
  return (
    <section class="controls" aria-label="Controls">
      <div class="row">
        <label>
          Range
          <select
            name="range"
            value={state.range}
            onChange={(e) => navigate({ range: e.currentTarget.value as Preset, period: null })}
          >
            {PRESETS.map((preset) => (
              <option value={preset}>{PRESET_LABELS[preset]}</option>
            ))}
          </select>
        </label>
        {state.range === 'custom' && (
          <>
            <label>
              From
              <input type="date" name="start" value={range.start} onChange={(e) => navigate({ start: e.currentTarget.value || null, period: null })} />
            </label>
            <label>
              To
              <input type="date" name="end" value={range.end} onChange={(e) => navigate({ end: e.currentTarget.value || null, period: null })} />
            </label>
          </>
        )}
        <label>
          Interval
          <select
            name="interval"
            value={state.interval}
            onChange={(e) => navigate({ interval: e.currentTarget.value as Interval, period: null })}
          >
            {INTERVALS.map((interval) => (
              <option value={interval}>{interval.toLowerCase()}</option>
            ))}
          </select>
        </label>
        {!usage && (
          <label>
            Currency
            <select name="currency" value={state.currency ?? ''} onChange={(e) => navigate({ currency: e.currentTarget.value || null })}>
              <option value="">Base currency</option>
              {CURRENCIES.map((code) => (
                <option value={code}>{code}</option>
              ))}
            </select>
          </label>
        )}
        <label>
          Breakdown
          <select name="dimension" value={state.dimension ?? ''} onChange={(e) => navigate({ dimension: e.currentTarget.value || null })}>
            <option value="">None</option>
            {dimensions.map((d) => (
              <option value={d.name} title={d.description}>
                {d.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          Segment
          <select name="segment" value={state.segment ?? ''} onChange={(e) => navigate({ segment: e.currentTarget.value || null })}>
            <option value="">All customers</option>
            {meta.segments.map((s) => (
              <option value={s.id}>{s.name}</option>
            ))}
          </select>
        </label>
      </div>
      <details class="more">
        <summary>
          Filters ({state.filters.length}) and compared segments ({state.compare.length})
        </summary>
        <ul class="chips" aria-label="Filters">
          {state.filters.map((filter, index) => (
            <li>
              <span>
                {filter.field} {filter.op} {filter.values.join(', ')}
              </span>
              <button
                type="button"
                aria-label={`Remove filter ${filter.field} ${filter.op}`}
                onClick={() => navigate({ filters: state.filters.filter((_, i) => i !== index) })}
              >
                ×
              </button>
            </li>
          ))}
        </ul>
        <FilterForm fields={fields} onAdd={(filter) => navigate({ filters: [...state.filters, filter] })} />
        <fieldset>
          <legend>Compare segments (up to {MAX_COMPARED})</legend>
          {meta.segments.length === 0 && <p>No saved segments yet (createSegment).</p>}
          {meta.segments.map((s) => (
            <label class="check">
              <input
                type="checkbox"
                checked={state.compare.includes(s.id)}
                disabled={!state.compare.includes(s.id) && state.compare.length >= MAX_COMPARED}
                onChange={(e) => toggleCompare(s.id, e.currentTarget.checked)}
              />
              {s.name}
            </label>
          ))}
        </fieldset>
      </details>
    </section>
  )
}
