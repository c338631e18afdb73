import { describe, expect, it } from 'vitest'
import { presetRange } from './ranges'

const data = { first: '2023-02-14', last: '2025-06-30', today: '2025-03-15' }

describe('date range presets', () => {
  it('counts the current month in the last N months', () => {
    expect(presetRange('3m', data)).toEqual({ start: '2025-01-01', end: '2025-03-15' })
    expect(presetRange('6m', data)).toEqual({ start: '2024-10-01', end: '2025-03-15' })
    expect(presetRange('12m', data)).toEqual({ start: '2024-04-01', end: '2025-03-15' })
  })

  it('starts the year to date on January 1st and all time at the first movement', () => {
    expect(presetRange('ytd', data)).toEqual({ start: '2025-01-01', end: '2025-03-15' })
    expect(presetRange('all', data)).toEqual({ start: '2023-02-14', end: '2025-03-15' })
    expect(presetRange('all', { ...data, first: null })).toEqual({ start: '2025-03-15', end: '2025-03-15' })
  })

  it('keeps a custom range', () => {
    expect(presetRange('custom', data, { start: '2020-01-01', end: '2020-12-31' })).toEqual({
      start: '2020-01-01',
      end: '2020-12-31',
    })
  })
})
