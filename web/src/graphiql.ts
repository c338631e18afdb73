// GraphiQL, served by Tidemill itself at /graphql (no CDN): the editor over this server's
// endpoint. An API key typed in GraphiQL's headers tab is sent as usual.
import 'graphiql/style.css'
import './graphiql.css'
import { createGraphiQLFetcher } from '@graphiql/toolkit'
import { GraphiQL } from 'graphiql'
import { createElement } from 'react'
import { createRoot } from 'react-dom/client'

const fetcher = createGraphiQLFetcher({ url: new URL('/graphql', window.location.href).href })
const root = document.getElementById('graphiql')
if (root) {
  root.textContent = ''
  createRoot(root).render(createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true }))
}
