// Pieces the views share: the state of a loading query, and a pager over keyset cursors.
import type { ComponentChildren } from 'preact'
import type { Loaded } from '../data'

export function Status<T>({ loaded, children }: { loaded: Loaded<T>; children: (data: T) => ComponentChildren }) {
  if (loaded.status === 'error') {
    return (
      <p role="alert" class="error">
        {loaded.error.message}
      </p>
    )
  }
  if (!loaded.data) return <p class="loading">Loading…</p>
  return <div aria-busy={loaded.status === 'loading'}>{children(loaded.data)}</div>
}

export function Pager({
  page,
  hasNext,
  onPrevious,
  onNext,
  label,
}: {
  page: number
  hasNext: boolean
  onPrevious: () => void
  onNext: () => void
  label: string
}) {
  return (
    <nav class="pager" aria-label={`${label} pages`}>
      <button type="button" onClick={onPrevious} disabled={page === 0}>
        Previous
      </button>
      <span>Page {page + 1}</span>
      <button type="button" onClick={onNext} disabled={!hasNext}>
        Next
      </button>
    </nav>
  )
}

export function CustomerLink({ id, label, onOpen }: { id: string; label: string; onOpen: (id: string) => void }) {
  return (
    <a
      href={`?view=customer&customer=${encodeURIComponent(id)}`}
      onClick={(event) => {
        event.preventDefault()
        onOpen(id)
      }}
    >
      {label}
    </a>
  )
}
