import { describe, expect, it } from 'vitest'
import { toCsv } from './csv'

describe('CSV export', () => {
  it('writes the values as they are, quoting what needs it', () => {
    const csv = toCsv({
      columns: ['date', 'mrr_cents', 'label'],
      rows: [
        ['2025-01-01', 123456, 'Pro, yearly'],
        ['2025-02-01', null, 'say "hi"'],
      ],
    })
    expect(csv).toBe('date,mrr_cents,label\r\n2025-01-01,123456,"Pro, yearly"\r\n2025-02-01,,"say ""hi"""\r\n')
  })
})
