import { afterEach, describe, expect, it, vi } from 'vitest'
import { byUnit, count, day, money, month, percent, ratio, signedPercent, usageValue } from './format'

function inLocale(language: string) {
  vi.stubGlobal('navigator', { language })
}

afterEach(() => vi.unstubAllGlobals())

describe('formatting with Intl', () => {
  it('formats cents as the currency, in the browser locale', () => {
    inLocale('en-US')
    expect(money(123456, 'USD')).toBe('$1,234.56')
    expect(money(-500, 'USD')).toBe('-$5.00')
    inLocale('de-DE')
    expect(money(123456, 'EUR')).toBe('1.234,56\u00a0€')
  })

  it('has a compact form for tiles and axes', () => {
    inLocale('en-US')
    expect(money(1234567800, 'USD', true)).toBe('$12.3M')
    expect(count(15320, true)).toBe('15.3K')
  })

  it('shows rates as percentages and changes with their sign', () => {
    inLocale('en-US')
    expect(percent(0.0412)).toBe('4.1%')
    expect(signedPercent(0.05)).toBe('+5.0%')
    expect(signedPercent(-0.125)).toBe('-12.5%')
    expect(signedPercent(0)).toBe('0.0%')
  })

  it('shows a missing value as a dash, never as zero', () => {
    for (const value of [null, undefined]) {
      expect(money(value, 'USD')).toBe('—')
      expect(percent(value)).toBe('—')
      expect(count(value)).toBe('—')
      expect(ratio(value)).toBe('—')
    }
  })

  it('formats dates in UTC whatever the time zone', () => {
    inLocale('en-US')
    expect(day('2025-03-01')).toBe('Mar 1, 2025')
    expect(month('2025-12-01')).toBe('Dec 2025')
  })

  it('picks the format of a unit', () => {
    inLocale('en-US')
    expect(byUnit(250, 'cents', 'GBP')).toBe('£2.50')
    expect(byUnit(7, 'count', 'GBP')).toBe('7')
    expect(byUnit(0.5, 'rate', 'GBP')).toBe('50.0%')
    expect(byUnit(1.333, 'ratio', 'GBP')).toBe('1.33')
  })

  it('formats usage values with up to two decimals, and none as a dash', () => {
    inLocale('en-US')
    expect(usageValue(1844524)).toBe('1,844,524')
    expect(usageValue(2326.1389)).toBe('2,326.14')
    expect(usageValue(0)).toBe('0')
    expect(usageValue(null)).toBe('—')
    expect(usageValue(1844524, true)).toBe('1.8M')
    inLocale('de-DE')
    expect(usageValue(116.875)).toBe('116,88')
  })
})
