"""What synthesized posts are made of: stacks, problems, titles, prose, images, and the weights of each draw.

Data only, built once as tuples; a document only picks from them (``documents.synth.build``).
"""

from __future__ import annotations

import datetime as dt

# (stack, area, code language, related terms, tools)
STACKS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
    (
        "python services",
        "backend",
        "python",
        ("asyncio", "wsgi"),
        ("fastapi", "pytest", "uvicorn", "ruff", "mypy", "celery", "gunicorn"),
    ),
    (
        "django apps",
        "backend",
        "python",
        ("orm migrations", "wsgi"),
        ("manage.py", "celery", "pytest-django", "gunicorn", "django-debug-toolbar", "redis-cli"),
    ),
    (
        "flask apis",
        "backend",
        "python",
        ("wsgi", "jinja templates"),
        ("flask", "gunicorn", "pytest", "sqlalchemy", "alembic"),
    ),
    (
        "node.js apis",
        "backend",
        "javascript",
        ("npm packages", "event loop"),
        ("express", "npm", "jest", "pm2", "eslint", "clinic.js"),
    ),
    (
        "typescript services",
        "backend",
        "typescript",
        ("node.js", "type checking"),
        ("tsc", "vitest", "eslint", "pnpm", "fastify", "tsx"),
    ),
    (
        "go microservices",
        "backend",
        "go",
        ("grpc", "goroutines"),
        ("go test", "pprof", "golangci-lint", "delve", "grpcurl"),
    ),
    (
        "rails apps",
        "backend",
        "ruby",
        ("active record", "background jobs"),
        ("rails console", "rspec", "sidekiq", "puma", "rubocop", "bundler"),
    ),
    (
        "laravel apps",
        "backend",
        "php",
        ("eloquent", "queues"),
        ("artisan", "composer", "phpunit", "horizon", "telescope"),
    ),
    (
        "spring boot services",
        "backend",
        "java",
        ("jvm", "jpa"),
        ("maven", "gradle", "junit", "spring actuator", "jfr"),
    ),
    (
        ".net apis",
        "backend",
        "c#",
        ("asp.net core", "entity framework"),
        ("dotnet cli", "xunit", "dotnet-trace", "ef core migrations"),
    ),
    (
        "react frontends",
        "frontend",
        "typescript",
        ("single-page apps", "bundle size"),
        ("vite", "react devtools", "jest", "eslint", "storybook", "lighthouse"),
    ),
    (
        "vue frontends",
        "frontend",
        "javascript",
        ("single-page apps", "component libraries"),
        ("vite", "vue devtools", "vitest", "eslint", "pinia"),
    ),
    (
        "next.js sites",
        "frontend",
        "typescript",
        ("server rendering", "edge functions"),
        ("next build", "vercel cli", "lighthouse", "playwright", "eslint"),
    ),
    (
        "angular apps",
        "frontend",
        "typescript",
        ("rxjs", "single-page apps"),
        ("angular cli", "karma", "jasmine", "eslint", "webpack-bundle-analyzer"),
    ),
    (
        "wordpress sites",
        "cms",
        "php",
        ("mysql", "plugins"),
        ("wp-cli", "query monitor", "composer", "phpcs", "redis object cache"),
    ),
    (
        "drupal sites",
        "cms",
        "php",
        ("mysql", "configuration management"),
        ("drush", "composer", "devel", "phpunit"),
    ),
    (
        "kubernetes clusters",
        "devops",
        "yaml",
        ("containers", "helm charts"),
        ("kubectl", "helm", "k9s", "kustomize", "prometheus"),
    ),
    (
        "terraform infrastructure",
        "devops",
        "hcl",
        ("infrastructure as code", "cloud accounts"),
        ("terraform", "tflint", "terragrunt", "checkov"),
    ),
    (
        "docker compose stacks",
        "devops",
        "yaml",
        ("containers", "local development"),
        ("docker compose", "dive", "hadolint", "ctop"),
    ),
    (
        "github actions pipelines",
        "devops",
        "yaml",
        ("ci/cd", "self-hosted runners"),
        ("gh cli", "act", "actionlint", "dependabot"),
    ),
    (
        "nginx proxies",
        "devops",
        "nginx",
        ("reverse proxy", "tls"),
        ("nginx -t", "certbot", "goaccess", "curl"),
    ),
    (
        "postgresql databases",
        "data",
        "sql",
        ("indexes", "replication"),
        ("psql", "pg_stat_statements", "pgbouncer", "pg_dump", "explain analyze"),
    ),
    (
        "mysql databases",
        "data",
        "sql",
        ("innodb", "replication"),
        ("mysql shell", "pt-query-digest", "mysqldump", "mysqltuner"),
    ),
    (
        "redis caches",
        "data",
        "bash",
        ("key-value store", "eviction policies"),
        ("redis-cli", "redis insight", "memtier_benchmark"),
    ),
    (
        "elasticsearch clusters",
        "search",
        "json",
        ("full-text search", "index mappings"),
        ("kibana", "curl", "esrally", "cerebro"),
    ),
    (
        "kafka pipelines",
        "data",
        "java",
        ("event streaming", "consumer groups"),
        ("kafka cli", "kcat", "schema registry", "cruise control"),
    ),
    (
        "airflow pipelines",
        "data",
        "python",
        ("dag scheduling", "etl"),
        ("airflow cli", "dbt", "great expectations", "pytest"),
    ),
    (
        "shopify storefronts",
        "ecommerce",
        "liquid",
        ("themes", "checkout"),
        ("shopify cli", "theme check", "lighthouse"),
    ),
    (
        "ios apps",
        "mobile",
        "swift",
        ("app store releases", "swiftui"),
        ("xcode", "instruments", "fastlane", "swiftlint"),
    ),
    (
        "android apps",
        "mobile",
        "kotlin",
        ("play store releases", "jetpack compose"),
        ("gradle", "android studio profiler", "leakcanary", "fastlane"),
    ),
)

GENERIC_TOOLS = ("git", "logs", "docker", "curl", "grafana", "sentry", "make", "jq", "htop")

ANY = ("backend", "frontend", "cms", "devops", "data", "search", "ecommerce", "mobile")

# (problem, the areas whose stacks it fits)
PROBLEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("keeping staging close to production", ANY),
    ("documenting deployment steps", ANY),
    ("rolling back a bad release", ANY),
    ("reducing noisy alerts", ANY),
    ("handling secrets safely", ANY),
    ("upgrading dependencies without surprises", ANY),
    ("writing useful error logs", ANY),
    ("tracking down a memory leak", ("backend", "frontend", "cms", "data", "search", "mobile")),
    (
        "planning a zero-downtime deploy",
        ("backend", "frontend", "cms", "devops", "data", "search", "ecommerce"),
    ),
    ("keeping build times short", ("backend", "frontend", "devops", "mobile")),
    ("onboarding new developers faster", ANY),
    ("monitoring error rates after a release", ANY),
    ("cleaning up feature flags", ("backend", "frontend", "mobile", "ecommerce")),
    ("auditing access permissions", ("backend", "cms", "devops", "data", "ecommerce")),
    ("load testing before a launch", ("backend", "frontend", "cms", "search", "ecommerce")),
    ("reducing cold start time", ("backend", "devops")),
    ("tuning database connection pools", ("backend", "data", "cms")),
    ("making background jobs idempotent", ("backend", "cms", "data")),
    ("rate limiting public endpoints", ("backend", "devops")),
    ("caching api responses", ("backend", "cms", "devops")),
    ("handling timeouts between services", ("backend", "devops")),
    ("versioning a public api", ("backend",)),
    ("running schema migrations safely", ("backend", "data", "cms")),
    ("shrinking javascript bundles", ("frontend", "ecommerce")),
    ("improving largest contentful paint", ("frontend", "cms", "ecommerce")),
    ("fixing layout shift on slow networks", ("frontend", "cms", "ecommerce")),
    ("caching static assets correctly", ("frontend", "devops", "cms")),
    ("making forms accessible", ("frontend", "cms", "ecommerce")),
    ("handling client-side errors", ("frontend", "mobile")),
    ("purging cdn caches safely", ("cms", "frontend", "devops", "ecommerce")),
    ("speeding up the admin dashboard", ("cms", "backend")),
    ("managing plugin updates", ("cms",)),
    ("moving media uploads to object storage", ("cms", "backend")),
    ("keeping editors and developers in sync", ("cms",)),
    ("migrating content between environments", ("cms", "data")),
    ("right-sizing container resources", ("devops", "backend")),
    ("rotating tls certificates", ("devops",)),
    ("keeping infrastructure changes reviewable", ("devops",)),
    ("recovering from a failed node", ("devops", "data", "search")),
    ("cutting cloud costs", ("devops", "data", "search")),
    ("making ci pipelines reliable", ("devops", "backend", "frontend", "mobile")),
    ("finding slow queries", ("data", "backend", "cms")),
    ("planning index changes", ("data", "search")),
    ("backing up and restoring data", ("data", "cms", "devops")),
    ("keeping replicas in sync", ("data", "search")),
    ("handling schema drift", ("data",)),
    ("reprocessing failed events", ("data", "backend")),
    ("tuning search relevance", ("search", "ecommerce")),
    ("reindexing without downtime", ("search",)),
    ("reducing app startup time", ("mobile",)),
    ("shipping staged rollouts", ("mobile", "backend", "frontend")),
    ("tracking crashes in production", ("mobile", "frontend")),
    ("keeping checkout fast during sales", ("ecommerce",)),
    ("syncing inventory reliably", ("ecommerce",)),
)

PROBLEMS_BY_AREA: dict[str, tuple[str, ...]] = {
    area: tuple(problem for problem, areas in PROBLEMS if area in areas) for area in ANY
}

SCENARIOS = (
    "while keeping the admin area responsive",
    "without downtime during business hours",
    "on a small team with limited on-call coverage",
    "before a large marketing launch",
    "during a gradual cloud migration",
    "on a tight hosting budget",
    "while traffic keeps growing every month",
    "after a painful production incident",
    "across several staging environments",
    "while supporting older clients",
    "under strict compliance requirements",
    "while editors keep publishing",
    "during a major framework upgrade",
    "with a team spread across time zones",
    "while the product roadmap keeps changing",
    "for a site with seasonal traffic peaks",
)

TITLES = (
    "practical guide to {problem} with {stack}",
    "{problem} in {stack}: a field guide",
    "a checklist for {problem} on {stack}",
    "how we approach {problem} in {stack}",
    "{stack}: notes on {problem}",
    "lessons learned from {problem} with {stack}",
    "{problem} with {stack}, step by step",
    "a calm approach to {problem} for {stack}",
)

INTROS = (
    "when a project grows, {problem} stops being a small cleanup task and becomes part of the way the team "
    "ships software. this alphanode note walks through a practical approach to {stack} {scenario}.",
    "most teams working with {stack} run into {problem} sooner or later. this alphanode note collects the "
    "steps that worked for us {scenario}.",
    "{problem} sounds simple until it fails in production. this note explains how to handle it in {stack} "
    "{scenario}, using {tool} and a few plain checks.",
    "this alphanode note is about {problem} in {stack}. it focuses on small, reversible changes that a "
    "{area} team can make {scenario}.",
    "there is no single switch for {problem}, but {stack} gives you enough tools to make it predictable. "
    "here is the approach we use {scenario}.",
)

SUMMARIES = (
    "this ai-style technical summary explains {problem} in {stack}, with emphasis on {emphasis}.",
    "a short summary of how to approach {problem} in {stack} {scenario}, focusing on {emphasis}.",
    "this post covers {problem} for {stack} and keeps the focus on {emphasis}.",
    "an overview of {problem} in {stack}: what to measure, what to change, and how to roll it back.",
)

EMPHASES = (
    "measurement, safe defaults, rollback planning, and maintainable documentation",
    "small reversible changes and clear metrics",
    "repeatable commands and honest trade-offs",
    "monitoring, testing, and a written rollback plan",
    "team habits as much as tooling",
)

ACTIONS = (
    "measure first, change carefully, document the result",
    "start with a small experiment and expand it gradually",
    "automate the check before changing the configuration",
    "write the rollback plan before the rollout plan",
    "fix the biggest bottleneck first and measure again",
    "make the change reversible and watch the metrics",
    "agree on a baseline, then change one thing at a time",
    "review the runbook with the on-call engineer",
)

BRIEFS = (
    "the article is written like a careful ai generated engineering draft: it explains the reason for the "
    "change, lists operational checks, and avoids pretending that one command fixes every production case.",
    "the draft reads like an internal engineering note: short sections, concrete checks, and a clear "
    "statement of what was not tested.",
    "the text follows a structured ai-assisted style: context first, then the change, then the checks that "
    "prove it worked.",
    "written as a practical walkthrough for {area} developers, with the commands kept generic enough to "
    "adapt to other projects.",
    "the tone is deliberately cautious: each recommendation comes with a way to measure it and a way to undo it.",
)

CHECKLIST = (
    "inspect cache headers",
    "test logged-in traffic",
    "purge only the affected route",
    "measure response time",
    "keep a rollback command ready",
    "confirm the last backup finished",
    "check error rates after deploy",
    "review slow query logs",
    "pin dependency versions",
    "run the smoke tests",
    "verify environment variables",
    "compare staging and production config",
    "watch memory usage for an hour",
    "notify the on-call engineer",
    "update the runbook",
    "tag the release in git",
    "remove stale feature flags",
    "check disk space on workers",
    "validate the migration on a copy",
    "record the baseline metrics",
)

NOTES = (
    "sanitized array meta is expected to render as a list in the frontend box",
    "view count is synthetic and only used for testing meta volume",
    "content is generated for import/load testing and should be reviewed before indexing",
    "scores are synthetic and only meant for ranking tests",
    "image urls point to placeholder services",
    "the checklist mirrors the list in the body",
    "reviewed dates are synthetic",
    "tool names are illustrative, not an endorsement",
)

STATUSES = ("drafted", "reviewed", "published", "needs review", "archive candidate")
DIFFICULTIES = ("beginner", "intermediate", "advanced")

CHECKLIST_HEADINGS = (
    "implementation checklist",
    "pre-release checklist",
    "operational checklist",
    "before you deploy",
    "verification steps",
)

# Paragraphs that fit under any heading.
GENERIC_PARAGRAPHS = (
    "cache rules should be written for people who will debug them later. name the rule, document the bypass "
    "conditions, and include examples of pages that should and should not be cached.",
    "large content sites need predictable background work. queues, cron events, and import scripts should "
    "be idempotent, logged, and safe to run again. that makes recovery much easier when a request stops "
    "halfway through.",
    "with {stack}, the quickest wins usually come from removing guesswork. write down what {tool} reports "
    "today, change one setting, and compare the numbers before touching anything else.",
    "{problem} is rarely a single bug. it is a set of small decisions that drift apart over time, so the "
    "fix has to include a way to notice the drift again.",
    "keep the commands in the repository, not in someone's shell history. a short script that wraps {tool} "
    "and {other} is easier to review than a page of instructions.",
    "teams {scenario} cannot afford long investigations. a dashboard with three honest metrics beats a "
    "dozen charts nobody reads.",
    "the {language} code involved is usually small. the hard part is agreeing on defaults and making sure "
    "every environment actually uses them.",
    "if a change cannot be explained in two sentences, split it. smaller changes are easier to review, "
    "easier to roll back, and easier to measure.",
)

# (heading, rank, its own paragraphs): rank orders sections, early ones first.
SECTIONS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
    (
        "why this matters",
        0,
        (
            "{problem} affects more than performance. it shapes how confident the team feels when shipping "
            "{stack}, and confidence is what keeps releases small and frequent.",
            "every hour spent on a surprise in production is an hour not spent on the roadmap. fixing "
            "{problem} early is cheaper than explaining the same incident twice.",
        ),
    ),
    (
        "background",
        0,
        (
            "the project runs on {stack} with a fairly standard {area} setup. most of the tooling is "
            "ordinary: {tool}, {other}, and whatever the hosting provider gives us.",
            "nobody planned for {problem} at the start. it became visible {scenario}, when small "
            "inconsistencies began to cost real time.",
        ),
    ),
    (
        "measuring the baseline",
        0,
        (
            "before changing anything, record how the system behaves today. {tool} is enough to capture "
            "a baseline, as long as the measurement is repeated the same way each time.",
            "pick two or three numbers that describe {problem} and write them down with the date and the "
            "commit. without a baseline there is no way to tell whether a change helped.",
        ),
    ),
    (
        "production checks",
        1,
        (
            "production is where assumptions break. check the real configuration of {stack} instead of "
            "the one in the documentation, because the two drift apart quietly.",
            "run the same checks after every deploy, not only after incidents. {other} can do most of this "
            "automatically if the expected values are written down.",
        ),
    ),
    (
        "step by step",
        1,
        (
            "start with the smallest environment that still shows the problem. reproduce it, apply the "
            "change, and confirm the result with {tool} before moving on.",
            "next, repeat the change in staging and let it run for a full day. many issues with "
            "{problem} only appear under a realistic mix of traffic and background jobs.",
        ),
    ),
    (
        "configuration details",
        1,
        (
            "keep the {stack} configuration in version control and review it like code. a setting that "
            "lives only on one server will eventually be lost or overwritten.",
            "prefer explicit values over defaults that change between versions. a comment next to each "
            "value explaining why it was chosen saves a lot of archaeology later.",
        ),
    ),
    (
        "common mistakes",
        1,
        (
            "the most common mistake is changing several things at once. when the numbers move, nobody "
            "can tell which change caused it.",
            "another frequent mistake is trusting a single run of {tool}. results vary, so repeat the "
            "measurement and look at the spread, not only the best value.",
        ),
    ),
    (
        "testing the change",
        1,
        (
            "write a test that fails before the change and passes after it. for {problem} that is not "
            "always possible, but even a scripted manual check is better than memory.",
            "run the {language} test suite together with a short load test. {other} helps catch the cases "
            "where the change works for one request but not for a hundred.",
        ),
    ),
    (
        "rollout plan",
        1,
        (
            "roll the change out to a small share of traffic first. watch the error rate and latency for "
            "an hour before widening it, and keep the previous version ready.",
            "announce the rollout in the team channel with a link to the checklist. people are more "
            "careful when they know what is changing and when.",
        ),
    ),
    (
        "trade-offs",
        1,
        (
            "every fix for {problem} costs something: more configuration, more moving parts, or more "
            "memory. decide which cost the team is willing to carry before committing to it.",
            "the simplest solution is not always the cheapest one to run, but it is usually the cheapest "
            "one to debug. for {stack} that often tips the balance.",
        ),
    ),
    (
        "what to automate",
        1,
        (
            "automate the checks that are boring and easy to forget. a ci job that runs {tool} on every "
            "merge is worth more than a perfect manual process.",
            "leave the judgment calls to people. automation should collect the evidence and make the "
            "decision easy, not make the decision on its own.",
        ),
    ),
    (
        "monitoring after release",
        2,
        (
            "after the release, keep an eye on the same numbers used for the baseline. if they drift back, "
            "the fix was incomplete or something else changed at the same time.",
            "add an alert only when someone knows what to do when it fires. for {problem}, one clear alert "
            "is better than five vague ones.",
        ),
    ),
    (
        "rollback strategy",
        2,
        (
            "decide in advance what a failed rollout looks like. when that threshold is crossed, roll back "
            "first and investigate second.",
            "a rollback for {stack} should be one command that has been tested recently. if it has not been "
            "used in months, assume it no longer works.",
        ),
    ),
    (
        "final notes",
        2,
        (
            "the best result is not only a faster or cleaner {stack} implementation. it is a change that "
            "another developer can inspect, understand, and safely repeat. keep the final commands, "
            "metrics, and assumptions close to the article so future maintenance is easier.",
            "none of this is specific to one team. the same approach to {problem} works for most {area} "
            "projects, as long as the measurements stay honest.",
        ),
    ),
    (
        "wrapping up",
        2,
        (
            "{problem} will come back in a new form sooner or later. the notes, scripts, and checks from "
            "this change make the next round much shorter.",
            "share the results with the rest of the team, including what did not work. negative results "
            "save someone else a week of experiments.",
        ),
    ),
)


UNSPLASH_PHOTOS = (
    "1555949963-aa79dcee981c",
    "1555066931-4365d14bab8c",
    "1498050108023-c5249f4df085",
    "1517694712202-14dd9538aa97",
    "1461749280684-dccba630e2f6",
    "1504639725590-34d0984388bd",
    "1519389950473-47ba0277781c",
    "1518770660439-4636190af475",
    "1487058792275-0ad4aaf24ca7",
    "1516116216624-53e697fedbea",
    "1550439062-609e1531270e",
    "1515879218367-8466d910aaa4",
)

# Cumulative weights, for _weighted().
IMAGE_COUNTS = (0, 1, 2, 3, 4)
IMAGE_COUNT_WEIGHTS = (25, 45, 70, 88, 100)
NOTE_COUNTS = (0, 1, 2, 3, 4)
NOTE_COUNT_WEIGHTS = (20, 40, 65, 90, 100)
STATUS_WEIGHTS_FRESH = (20, 45, 85, 97, 100)  # drafted .. archive candidate
STATUS_WEIGHTS_STALE = (10, 25, 55, 75, 100)
DIFFICULTY_WEIGHTS_SHORT = (45, 85, 100)  # beginner, intermediate, advanced
DIFFICULTY_WEIGHTS_MEDIUM = (25, 75, 100)
DIFFICULTY_WEIGHTS_LONG = (10, 45, 100)
MAJORS = (0, 1, 2, 3)
MAJOR_WEIGHTS = (15, 65, 90, 100)

FIRST_REVIEW = dt.date(2024, 1, 1).toordinal()
LAST_REVIEW = dt.date(2026, 11, 1).toordinal()
REVIEW_SPAN = LAST_REVIEW - FIRST_REVIEW
