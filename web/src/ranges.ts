// Date ranges of the presets, relative to the server's today (dataRange.today) — calendar
// arithmetic on ISO dates, never on figures.

import type { Preset } from './url'

export interface Range {
  start: string
  end: string
}

export interface DataRange {
  first: string | null
  last: string | null
  today: string
}

function monthStart(day: string, monthsBack: number): string {
  const [year, month] = day.split('-').map(Number)
  const index = year * 12 + (month - 1) - monthsBack
  const y = Math.floor(index / 12)
  const m = (index % 12) + 1
  return `${String(y).padStart(4, '0')}-${String(m).padStart(2, '0')}-01`
}

// Last N months: the current month and the N-1 before it, up to today.
export function presetRange(preset: Preset, data: DataRange, custom: Partial<Range> = {}): Range {
  const today = data.today
  switch (preset) {
    case '3m':
      return { start: monthStart(today, 2), end: today }
    case '6m':
      return { start: monthStart(today, 5), end: today }
    case '12m':
      return { start: monthStart(today, 11), end: today }
    case 'ytd':
      return { start: `${today.slice(0, 4)}-01-01`, end: today }
    case 'all':
      return { start: data.first && data.first < today ? data.first : today, end: today }
    case 'custom':
      return {
        start: custom.start ?? monthStart(today, 11),
        end: custom.end ?? today,
      }
  }
}
