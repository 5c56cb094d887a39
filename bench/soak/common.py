"""What a soak sends and how hard: the operations' mix, the mutations, the limits of the verdict."""

from __future__ import annotations

from bench import load

ROOT = load.ROOT
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "var" / "soak"
SEED = 42
IMPORT_SEED = 4242  # documents imported during the soak: source ids alphanode-4242-NNNNNN
PG_DATABASE = "alphanode_soak"
HOST = "127.0.0.1"
MIB = 1024 * 1024

# Share of each read operation, in percent of reads (a site's traffic: post pages first).
READ_MIX = {
    "PostPage": 34,
    "PostByReference": 8,
    "Listing": 14,
    "FilteredListing": 14,
    "Search": 14,
    "Facets": 8,
    "EntityPage": 6,
    "Vocabulary": 2,
}
WRITE_MIX = {"updatePost": 3, "setStatus": 3, "markReviewed": 2, "importDocument": 2}
WRITE_SHARE = 0.05
# Of the imports, new documents; the others import an earlier one again, revised (a new title).
# A site's store grows by a few hundred posts a day; at this traffic, every import a new post
# would grow it by a tenth in half an hour, and a soak would measure a bigger store, not time.
NEW_IMPORT_SHARE = 0.1
HOT_BODIES = 200  # each operation's popular bodies
HOT_SHARE = 0.7  # of its requests
REVALIDATE_SHARE = 0.1  # reads sent with If-None-Match of an ETag seen before
STATUSES = ("published", "drafted", "needs review", "scheduled")
SOAK_CONNECTIONS = 32
PEAK_CONNECTIONS = 8
TIMEOUT_S = 30.0
IDLE_REOPEN_S = 4.0  # uvicorn closes a keep-alive connection idle for 5 s
FLAT_SHARE = 0.10
RESPONSE_CACHE_BYTES = 64 * 1024 * 1024  # the server's default bound, set explicitly for the run
FILL_SHARE = 0.9  # the fill ends once the response cache holds this share of its bound
FILL_CHUNK_S = 15.0  # closed-loop run between two looks at the cache's size
FILL_STALL_MIB = 0.5  # or once it grew less than this in a chunk
FILL_SETTLE_CHUNKS = 8  # then the mix, until USS over the last 8 chunks (2 minutes)…
FILL_SETTLE_SHARE = 0.01  # …is at most 1% above that of the 8 before
P99_FLOOR_MS = 1.0
FD_SLACK = 4
CONNECTION_SLACK = 2
ERROR_EXAMPLES = 20

POST_FIELDS = "id slug title contentHash meta { reference revision { status } }"
SAVED = f"... on PostSaved {{ changed post {{ {POST_FIELDS} }} }}"
REFUSED = "... on ValidationError { message fields { path code message } } ... on Conflict { message currentHash }"
MUTATIONS = {
    "updatePost": (
        "mutation Update($id: ID!, $input: PostPatch!, $expectedHash: String!) { result: "
        "updatePost(id: $id, input: $input, expectedHash: $expectedHash) "
        f"{{ __typename {SAVED} {REFUSED} ... on NotFound {{ message }} }} }}"
    ),
    "setStatus": (
        "mutation SetStatus($id: ID!, $status: String!) { result: setStatus(id: $id, status: $status) "
        f"{{ __typename {SAVED} {REFUSED} ... on NotFound {{ message }} }} }}"
    ),
    "markReviewed": (
        "mutation MarkReviewed($id: ID!) { result: markReviewed(id: $id) "
        f"{{ __typename {SAVED} {REFUSED} ... on NotFound {{ message }} }} }}"
    ),
    "importDocument": (
        "mutation Import($text: String!) { result: importDocument(text: $text) { __typename "
        f"... on ImportReceipt {{ created updated unchanged rejected {{ document error }} post {{ {POST_FIELDS} }} }} "
        f"{REFUSED} }} }}"
    ),
}
READ_BACK = "query ReadBack($reference: String!) { post(reference: $reference) { " + POST_FIELDS + " } }"


def _say(message: str) -> None:
    print(message, flush=True)
