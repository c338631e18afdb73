// Access: keyless on the loopback demo; otherwise an API key, kept in this tab's session only,
// and what its scopes allow.
import { useState } from 'preact/hooks'
import type { Viewer } from '../api'
import { apiKey } from '../client'

export function Access({ viewer, reason }: { viewer: Viewer | null; reason?: string }) {
  const [key, setKey] = useState('')
  const remembered = apiKey.get() !== null
  const submit = (event: Event) => {
    event.preventDefault()
    apiKey.set(key)
    window.location.reload()
  }
  const forget = () => {
    apiKey.clear()
    window.location.reload()
  }
  return (
    <section class="access" aria-labelledby="access-title">
      <h1 id="access-title">Access</h1>
      {reason && (
        <p role="alert" class="error">
          {reason}
        </p>
      )}
      {viewer && (
        <div data-viewer={viewer.name}>
          <p>
            {viewer.keyless ? (
              <>Signed in without a key: this server binds to a loopback address and has no API key yet.</>
            ) : (
              <>
                Using the key <strong>{viewer.name}</strong>.
              </>
            )}
          </p>
          <p>
            Scopes: <span data-scopes>{viewer.scopes.join(', ')}</span>. They allow you to:
          </p>
          <ul>
            {viewer.allows.map((allowed) => (
              <li>{allowed}</li>
            ))}
          </ul>
          <p class="muted">The dashboard runs only the persisted queries of queries/, so any key with one of these scopes can use it.</p>
        </div>
      )}
      <form onSubmit={submit} class="key-form">
        <label>
          API key
          <input
            type="password"
            name="apiKey"
            autoComplete="off"
            placeholder="tm_…"
            value={key}
            onInput={(e) => setKey(e.currentTarget.value)}
            required
          />
        </label>
        <button type="submit">Use this key</button>
        {remembered && (
          <button type="button" onClick={forget}>
            Forget the key
          </button>
        )}
      </form>
      <p class="muted">The key is kept in this browser tab's session storage only, and sent only to this server.</p>
    </section>
  )
}
