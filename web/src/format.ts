// Every figure on screen is the API's value, formatted here with the browser's Intl only.
// Money arrives in integer cents (hundredths of the currency's major unit).

const CENTS_PER_UNIT = 100

export function locale(): string | undefined {
  return typeof navigator === 'undefined' ? undefined : navigator.language
}

export function money(cents: number | null | undefined, currency: string, compact = false): string {
  if (cents === null || cents === undefined) return '—'
  return new Intl.NumberFormat(locale(), {
    style: 'currency',
    currency,
    notation: compact ? 'compact' : 'standard',
    maximumFractionDigits: compact ? 1 : 2,
    minimumFractionDigits: compact ? 0 : 2,
  }).format(cents / CENTS_PER_UNIT)
}

export function percent(fraction: number | null | undefined, digits = 1): string {
  if (fraction === null || fraction === undefined) return '—'
  return new Intl.NumberFormat(locale(), {
    style: 'percent',
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  }).format(fraction)
}

export function signedPercent(fraction: number | null | undefined): string {
  if (fraction === null || fraction === undefined) return '—'
  return new Intl.NumberFormat(locale(), {
    style: 'percent',
    signDisplay: 'exceptZero',
    minimumFractionDigits: 1,
    maximumFractionDigits: 1,
  }).format(fraction)
}

export function count(value: number | null | undefined, compact = false): string {
  if (value === null || value === undefined) return '—'
  return new Intl.NumberFormat(locale(), {
    notation: compact ? 'compact' : 'standard',
    maximumFractionDigits: compact ? 1 : 0,
  }).format(value)
}

export function ratio(value: number | null | undefined): string {
  if (value === null || value === undefined) return '—'
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 2, minimumFractionDigits: 2 }).format(value)
}

export function day(iso: string): string {
  const [y, m, d] = iso.split('-').map(Number)
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeZone: 'UTC' }).format(
    new Date(Date.UTC(y, m - 1, d)),
  )
}

export function month(iso: string): string {
  const [y, m] = iso.split('-').map(Number)
  return new Intl.DateTimeFormat(locale(), { year: 'numeric', month: 'short', timeZone: 'UTC' }).format(
    new Date(Date.UTC(y, m - 1, 1)),
  )
}

// A field of a given unit (the `metrics` discovery's units: cents, count, ratio).
export type Unit = 'cents' | 'count' | 'rate' | 'ratio'

export function byUnit(value: number | null | undefined, unit: Unit, currency: string, compact = false): string {
  switch (unit) {
    case 'cents':
      return money(value, currency, compact)
    case 'count':
      return count(value, compact)
    case 'rate':
      return percent(value)
    case 'ratio':
      return ratio(value)
  }
}

// A period's label on an axis, by the series' interval.
export function period(iso: string, interval: string): string {
  switch (interval) {
    case 'YEAR':
      return iso.slice(0, 4)
    case 'QUARTER':
    case 'MONTH':
      return month(iso)
    default:
      return day(iso)
  }
}

// A usage metric's value (a count, a sum, an average...): up to two decimals, as the API gave
// it; null (no value: no events for MIN/MAX/AVG/LATEST, a zero denominator) is a dash.
export function usageValue(value: number | null | undefined, compact = false): string {
  if (value === null || value === undefined) return '—'
  return new Intl.NumberFormat(locale(), {
    notation: compact ? 'compact' : 'standard',
    maximumFractionDigits: compact ? 1 : 2,
  }).format(value)
}
