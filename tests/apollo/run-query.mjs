// Run one GraphQL document against a Tidemill server through Apollo Client and its
// persisted-queries link, the way a partner's frontend would.
//
//   node run-query.mjs '{"url": ..., "key": ..., "document": ..., "variables": {...}, "get": false}'
//
// Prints {"data": ..., "errors": ..., "requests": [{method, hashOnly, hash}]} as JSON.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client/core/index.js";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries/index.js";

const options = JSON.parse(process.argv[2]);
const requests = [];

function sha256(text) {
  return createHash("sha256").update(text).digest("hex");
}

function describe(url, init) {
  const method = init?.method ?? "GET";
  if (method === "GET") {
    const params = new URL(url).searchParams;
    const extensions = JSON.parse(params.get("extensions") ?? "{}");
    return { method, hashOnly: !params.has("query"), hash: extensions.persistedQuery?.sha256Hash };
  }
  const body = JSON.parse(init.body);
  return { method, hashOnly: !body.query, hash: body.extensions?.persistedQuery?.sha256Hash };
}

async function recordingFetch(url, init) {
  requests.push(describe(url, init));
  return fetch(url, init);
}

const headers = options.key ? { authorization: `Bearer ${options.key}` } : {};
const link = createPersistedQueryLink({ sha256, useGETForHashedQueries: Boolean(options.get) }).concat(
  new HttpLink({ uri: options.url, headers, fetch: recordingFetch }),
);
// The default cache, which adds __typename to the document before it is hashed and sent.
const client = new ApolloClient({ link, cache: new InMemoryCache() });

let outcome;
try {
  const result = await client.query({
    query: gql(options.document),
    variables: options.variables ?? {},
    fetchPolicy: "no-cache",
  });
  outcome = { data: result.data, errors: result.errors ?? null };
} catch (error) {
  const errors = error.graphQLErrors?.length
    ? error.graphQLErrors
    : error.networkError?.result?.errors ?? [{ message: error.message }];
  outcome = { data: null, errors, status: error.networkError?.statusCode ?? null };
}
process.stdout.write(JSON.stringify({ ...outcome, requests }) + "\n");
