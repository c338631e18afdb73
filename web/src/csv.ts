// A chart's data as CSV: the API's values as they came (money in integer cents).

export type Cell = string | number | boolean | null | undefined

export interface Table {
  columns: string[]
  rows: Cell[][]
}

function field(value: Cell): string {
  if (value === null || value === undefined) return ''
  const text = String(value)
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text
}

export function toCsv(table: Table): string {
  return [table.columns, ...table.rows].map((row) => row.map(field).join(',')).join('\r\n') + '\r\n'
}
