// Runs graphql-http's server audit (the GraphQL over HTTP specification) against a URL and
// prints the results as one JSON array on standard output:
//   node tests/audit/audit.mjs http://127.0.0.1:PORT/graphql
// Each result is {id, name, status: "ok" | "notice" (MAY) | "warn" (SHOULD) | "error" (MUST)},
// and for a failure its reason and what the server answered (status, content type, body).
// tests/audit/test_graphql_http_audit.py starts the server and judges the results.
import { auditServer } from "graphql-http";

const url = process.argv[2];
if (!url) {
  console.error("usage: node audit.mjs URL");
  process.exit(2);
}

async function describe(response) {
  if (!response) return null;
  let body = null;
  try {
    body = (await response.clone().text()).slice(0, 2000);
  } catch (error) {
    body = `(body already read: ${error.message})`;
  }
  return { status: response.status, contentType: response.headers.get("content-type"), body };
}

const results = await auditServer({ url });
const report = [];
for (const result of results) {
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== "ok") {
    entry.reason = result.reason;
    entry.response = await describe(result.response);
  }
  report.push(entry);
}
process.stdout.write(JSON.stringify(report) + "\n");
