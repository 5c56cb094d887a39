"""Synthesize alphanode page-text documents for import and load testing.

Document ``i`` of a run depends only on ``(seed, i)``: it draws from its own
:class:`random.Random`, seeded from a hash of the two, so generating 10 or 100,000
documents gives the same first 10, and ``start`` resumes a run anywhere. The
module-level random generator is never used.

The content follows the one real document (``tests/fixtures/000_*.txt``): a
problem solved in a stack, a few sections of prose, one checklist section whose
list is also the meta block's checklist, images at the top and between sections,
and a meta block whose counts agree with the body (``payload paragraphs`` is the
number of body paragraphs, ``has images``/``image heavy`` follow the images).
Every document satisfies ``parse(render(doc)) == doc``.

Identifiers are unique within a run and across seeds: the source id is
``alphanode-{seed}-{i:06d}`` and the reference ``anp-ref-{seed}-{i:06d}-NNNN``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import random
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

from ._model import (
    Block,
    BulletList,
    Document,
    Entity,
    Figure,
    Flags,
    Heading,
    Image,
    Layout,
    Meta,
    Outline,
    Paragraph,
    Payload,
    Revision,
    Scores,
)
from ._render import render

__all__ = ["GENERATOR", "file_name", "synthesize", "write"]

GENERATOR = "anp content synthesizer"

# -- vocabulary ---------------------------------------------------------------
#
# Built once, as tuples; a document only picks from them.

# (stack, area, code language, related terms, tools)
_STACKS: tuple[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], ...] = (
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

_GENERIC_TOOLS = ("git", "logs", "docker", "curl", "grafana", "sentry", "make", "jq", "htop")

_ANY = ("backend", "frontend", "cms", "devops", "data", "search", "ecommerce", "mobile")

# (problem, the areas whose stacks it fits)
_PROBLEMS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("keeping staging close to production", _ANY),
    ("documenting deployment steps", _ANY),
    ("rolling back a bad release", _ANY),
    ("reducing noisy alerts", _ANY),
    ("handling secrets safely", _ANY),
    ("upgrading dependencies without surprises", _ANY),
    ("writing useful error logs", _ANY),
    ("tracking down a memory leak", ("backend", "frontend", "cms", "data", "search", "mobile")),
    (
        "planning a zero-downtime deploy",
        ("backend", "frontend", "cms", "devops", "data", "search", "ecommerce"),
    ),
    ("keeping build times short", ("backend", "frontend", "devops", "mobile")),
    ("onboarding new developers faster", _ANY),
    ("monitoring error rates after a release", _ANY),
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

_PROBLEMS_BY_AREA: dict[str, tuple[str, ...]] = {
    area: tuple(problem for problem, areas in _PROBLEMS if area in areas) for area in _ANY
}

_SCENARIOS = (
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

_TITLES = (
    "practical guide to {problem} with {stack}",
    "{problem} in {stack}: a field guide",
    "a checklist for {problem} on {stack}",
    "how we approach {problem} in {stack}",
    "{stack}: notes on {problem}",
    "lessons learned from {problem} with {stack}",
    "{problem} with {stack}, step by step",
    "a calm approach to {problem} for {stack}",
)

_INTROS = (
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

_SUMMARIES = (
    "this ai-style technical summary explains {problem} in {stack}, with emphasis on {emphasis}.",
    "a short summary of how to approach {problem} in {stack} {scenario}, focusing on {emphasis}.",
    "this post covers {problem} for {stack} and keeps the focus on {emphasis}.",
    "an overview of {problem} in {stack}: what to measure, what to change, and how to roll it back.",
)

_EMPHASES = (
    "measurement, safe defaults, rollback planning, and maintainable documentation",
    "small reversible changes and clear metrics",
    "repeatable commands and honest trade-offs",
    "monitoring, testing, and a written rollback plan",
    "team habits as much as tooling",
)

_ACTIONS = (
    "measure first, change carefully, document the result",
    "start with a small experiment and expand it gradually",
    "automate the check before changing the configuration",
    "write the rollback plan before the rollout plan",
    "fix the biggest bottleneck first and measure again",
    "make the change reversible and watch the metrics",
    "agree on a baseline, then change one thing at a time",
    "review the runbook with the on-call engineer",
)

_BRIEFS = (
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

_CHECKLIST = (
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

_NOTES = (
    "sanitized array meta is expected to render as a list in the frontend box",
    "view count is synthetic and only used for testing meta volume",
    "content is generated for import/load testing and should be reviewed before indexing",
    "scores are synthetic and only meant for ranking tests",
    "image urls point to placeholder services",
    "the checklist mirrors the list in the body",
    "reviewed dates are synthetic",
    "tool names are illustrative, not an endorsement",
)

_STATUSES = ("drafted", "reviewed", "published", "needs review", "archive candidate")
_DIFFICULTIES = ("beginner", "intermediate", "advanced")

_CHECKLIST_HEADINGS = (
    "implementation checklist",
    "pre-release checklist",
    "operational checklist",
    "before you deploy",
    "verification steps",
)

# Paragraphs that fit under any heading.
_GENERIC_PARAGRAPHS = (
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
_SECTIONS: tuple[tuple[str, int, tuple[str, ...]], ...] = (
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


_UNSPLASH_PHOTOS = (
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
_IMAGE_COUNTS = (0, 1, 2, 3, 4)
_IMAGE_COUNT_WEIGHTS = (25, 45, 70, 88, 100)
_NOTE_COUNTS = (0, 1, 2, 3, 4)
_NOTE_COUNT_WEIGHTS = (20, 40, 65, 90, 100)
_STATUS_WEIGHTS_FRESH = (20, 45, 85, 97, 100)  # drafted .. archive candidate
_STATUS_WEIGHTS_STALE = (10, 25, 55, 75, 100)
_DIFFICULTY_WEIGHTS_SHORT = (45, 85, 100)  # beginner, intermediate, advanced
_DIFFICULTY_WEIGHTS_MEDIUM = (25, 75, 100)
_DIFFICULTY_WEIGHTS_LONG = (10, 45, 100)
_MAJORS = (0, 1, 2, 3)
_MAJOR_WEIGHTS = (15, 65, 90, 100)

_FIRST_REVIEW = dt.date(2024, 1, 1).toordinal()
_LAST_REVIEW = dt.date(2026, 11, 1).toordinal()
_REVIEW_SPAN = _LAST_REVIEW - _FIRST_REVIEW

# -- drawing ----------------------------------------------------------------------
#
# Small helpers over a Random instance's random(): the stdlib's choice(), sample()
# and randint() are several times slower, and a document makes some fifty draws.

_T = TypeVar("_T")
_Uniform = Callable[[], float]


def _pick(r: _Uniform, items: Sequence[_T]) -> _T:
    """One item, uniformly."""
    return items[int(r() * len(items))]


def _between(r: _Uniform, low: int, high: int) -> int:
    """An integer from low to high, both included, uniformly."""
    return low + int(r() * (high - low + 1))


def _sample(r: _Uniform, items: Sequence[_T], k: int) -> list[_T]:
    """k distinct items in random order (a partial Fisher-Yates shuffle)."""
    pool = list(items)
    n = len(pool)
    for i in range(min(k, n)):
        j = i + int(r() * (n - i))
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]


def _weighted(r: _Uniform, items: Sequence[_T], cum_weights: Sequence[int]) -> _T:
    """One item, drawn with the given cumulative weights."""
    return items[bisect_right(cum_weights, r() * cum_weights[-1])]


def _rank(section: tuple[str, int, tuple[str, ...]]) -> int:
    return section[1]


def _clamp(value: float, low: int = 0, high: int = 100) -> int:
    return max(low, min(high, round(value)))


def _document_key(seed: int, index: int) -> int:
    """A 64-bit integer that depends only on (seed, index): the document's random seed."""
    digest = hashlib.blake2b(f"anp:{seed}:{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _document(seed: int, index: int) -> Document:
    """Document ``index`` of the run with ``seed``; depends on nothing else."""
    key = _document_key(seed, index)
    rng = random.Random(key)
    r = rng.random

    stack, area, language, related, stack_tools = _pick(r, _STACKS)
    problem = _pick(r, _PROBLEMS_BY_AREA[area])
    scenario = _pick(r, _SCENARIOS)

    # stack terms: the stack and its area, then usually its language and sometimes a related term.
    terms = [stack, area]
    extra = r()
    if extra < 0.8:
        terms.append(language)
        if extra < 0.3:
            terms.append(_pick(r, related))
    stack_terms = tuple(dict.fromkeys(terms))

    own_tools = _sample(r, stack_tools, _between(r, 1, min(5, len(stack_tools))))
    generic_tools = _sample(r, _GENERIC_TOOLS, _between(r, 0, 3))
    tools = tuple(dict.fromkeys(own_tools + generic_tools))[:8]
    if len(tools) < 2:
        tools = (*tools, *(tool for tool in _GENERIC_TOOLS if tool not in tools))[:2]
    words = {
        "problem": problem,
        "stack": stack,
        "scenario": scenario,
        "area": area,
        "language": language,
        "tool": tools[0],
        "other": tools[1],
    }
    title = _pick(r, _TITLES).format_map(words)
    intro = _pick(r, _INTROS).format_map(words)

    # -- body: sections, one of them the checklist, images between them ------------
    checklist = tuple(_sample(r, _CHECKLIST, _between(r, 3, 7)))
    prose_count = _between(r, 1, 4)
    prose = sorted(_sample(r, _SECTIONS, prose_count), key=_rank)
    sections: list[list[Block]] = []
    paragraphs = 0
    spare = list(_GENERIC_PARAGRAPHS)  # each generic paragraph at most once per document
    for heading, _, own in prose:
        # A section opens with one of its own paragraphs, then more of its own or generic ones.
        count = _between(r, 1, 3)
        paragraphs += count
        texts = list(own)
        chosen = [texts.pop(int(r() * len(texts)))]
        for _ in range(count - 1):
            k = int(r() * (len(texts) + len(spare)))
            chosen.append(texts.pop(k) if k < len(texts) else spare.pop(k - len(texts)))
        blocks: list[Block] = [Heading(heading)]
        blocks += [Paragraph(text.format_map(words)) for text in chosen]
        sections.append(blocks)
    # The checklist goes anywhere before the closing sections.
    opening = sum(1 for section in prose if section[1] < 2)
    checklist_section: list[Block] = [Heading(_pick(r, _CHECKLIST_HEADINGS)), BulletList(checklist)]
    checklist_at = _between(r, 0, opening)
    sections.insert(checklist_at, checklist_section)

    image_count = _weighted(r, _IMAGE_COUNTS, _IMAGE_COUNT_WEIGHTS)
    # Slot 0 is right after the intro, slot k right after section k.
    slots = [0] * (len(sections) + 1)
    for _ in range(image_count):
        slots[_between(r, 0, len(sections))] += 1
    photos = _sample(r, _UNSPLASH_PHOTOS, image_count)
    subject = f"{problem} with {stack}"
    images: list[Image] = []
    body: list[Block] = []
    # An image right after a list or another image has no blank line before it, as in the seed.
    gap = 1
    for slot, shown in enumerate(slots):
        if slot:
            body += sections[slot - 1]
            gap = 0 if slot - 1 == checklist_at else 1
        for _ in range(shown):
            position = len(images) + 1
            if r() < 0.4:
                source = "picsum.photos"
                url = f"https://picsum.photos/seed/anp-{seed}-{index:06d}-{position}/1200/630"
            else:
                source = "unsplash"
                url = f"https://images.unsplash.com/photo-{photos[position - 1]}?auto=format&fit=crop&w=1200&q=80"
            images.append(Image(position, f"{subject} visual reference {position}", source, url))
            body.append(Figure(position, gap))
            gap = 0

    # -- meta -------------------------------------------------------------------------
    reading_time = _clamp(paragraphs * (0.8 + 0.9 * r()) + 0.3 * image_count + 3 * r(), 2, 20)
    if reading_time >= 12:
        difficulty = _weighted(r, _DIFFICULTIES, _DIFFICULTY_WEIGHTS_LONG)
    elif reading_time <= 4:
        difficulty = _weighted(r, _DIFFICULTIES, _DIFFICULTY_WEIGHTS_SHORT)
    else:
        difficulty = _weighted(r, _DIFFICULTIES, _DIFFICULTY_WEIGHTS_MEDIUM)

    reviewed_offset = _between(r, 0, _REVIEW_SPAN)
    age = 1 - reviewed_offset / _REVIEW_SPAN  # 0: reviewed on the last day, 1: on the first
    status = _weighted(r, _STATUSES, _STATUS_WEIGHTS_STALE if age > 0.6 else _STATUS_WEIGHTS_FRESH)
    version = f"{_weighted(r, _MAJORS, _MAJOR_WEIGHTS)}.{_between(r, 0, 12)}.{_between(r, 0, 20)}"

    quality = _clamp(rng.triangular(30, 100, 88))
    scores = Scores(
        quality=quality,
        freshness=_clamp(95 - 70 * age + rng.gauss(0, 6)),
        depth=_clamp(25 + 4 * paragraphs + 2 * reading_time + rng.gauss(0, 10)),
        clarity=_clamp(quality + rng.gauss(-3, 8)),
    )
    # Published posts are read more; views span several orders of magnitude.
    top = 6.0 if status in ("published", "reviewed") else 4.8
    view_count = int(10 ** (1 + (top - 1) * r()))

    if status == "needs review":
        needs_review = True
    elif status == "drafted":
        needs_review = r() < 0.6
    else:
        needs_review = r() < (0.4 if quality < 60 else 0.1)
    flags = Flags(
        ai_generated_style=r() < 0.8,
        has_images=image_count > 0,
        image_heavy=image_count >= 3,
        needs_human_review=needs_review,
    )

    entities = [Entity(stack, "stack"), Entity(area, "area"), Entity(problem, "problem")]
    entities += [Entity(tool, "tool") for tool in _sample(r, tools, _between(r, 0, 3))]

    meta = Meta(
        topic=f"{problem} / {stack}",
        summary=_pick(r, _SUMMARIES).format_map({**words, "emphasis": _pick(r, _EMPHASES)}),
        outline=Outline(context=scenario, problem=problem, stack=stack, recommended_action=_pick(r, _ACTIONS)),
        ai_brief=_pick(r, _BRIEFS).format_map(words),
        stack=stack_terms,
        tools=tools,
        code_language=language,
        difficulty=difficulty,
        reading_time=reading_time,
        view_count=view_count,
        scores=scores,
        revision=Revision(
            status=status,
            version=version,
            last_reviewed=dt.date.fromordinal(_FIRST_REVIEW + reviewed_offset),
        ),
        reference=f"anp-ref-{seed}-{index:06d}-{_between(r, 0, 9999):04d}",
        hash=f"{rng.getrandbits(96):024x}",
        flags=flags,
        checklist=checklist,
        entities=tuple(entities),
        payload=Payload(
            source_id=f"alphanode-{seed}-{index:06d}",
            generator=GENERATOR,
            paragraphs=paragraphs,
            scenario=scenario,
            seed=key & 0x7FFF_FFFF,  # fits a 32-bit column and a GraphQL Int
        ),
        notes=tuple(_sample(r, _NOTES, _weighted(r, _NOTE_COUNTS, _NOTE_COUNT_WEIGHTS))),
    )
    return Document(
        title=title,
        intro=intro,
        body=tuple(body),
        images=tuple(images),
        meta=meta,
        layout=Layout(),
    )


def _check(count: int, seed: int, start: int) -> None:
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    if seed < 0:
        raise ValueError(f"seed must be 0 or more, not {seed}")
    if start < 0:
        raise ValueError(f"start must be 0 or more, not {start}")


def synthesize(count: int, seed: int, start: int = 1) -> Iterator[Document]:
    """Yield ``count`` documents, numbered ``start``, ``start + 1``, ...

    Document ``i`` depends only on ``(seed, i)``: the same arguments always give the
    same documents, and a longer run begins with the documents of a shorter one.
    """
    _check(count, seed, start)
    return (_document(seed, index) for index in range(start, start + count))


def _name(text: str, index: int) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
    return f"{index:06d}_{digest}.txt"


def file_name(document: Document, index: int) -> str:
    """The file name of document ``index``: ``000001_<16 hex digits of sha256 of its text>.txt``."""
    return _name(render(document), index)


def write(
    out_dir: Path,
    count: int,
    seed: int,
    start: int = 1,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write ``count`` synthesized documents into ``out_dir``; return how many were written.

    Each file holds exactly ``render(document)`` as UTF-8 and is named by
    :func:`file_name`. A file is written under a temporary name (a dot file ending
    in ``.tmp``, in the same directory) and then renamed into place, so a killed run
    never leaves a half-written ``.txt`` document. Running it again with the same
    arguments rewrites the same files with the same bytes. ``progress``, if given,
    is called after each file with the number written so far.
    """
    _check(count, seed, start)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    pid = os.getpid()
    written = 0
    for index in range(start, start + count):
        text = render(_document(seed, index))
        name = _name(text, index)
        temporary = out_dir / f".{name}.{pid}.tmp"
        try:
            temporary.write_bytes(text.encode("utf-8"))
            os.replace(temporary, out_dir / name)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        written += 1
        if progress is not None:
            progress(written)
    return written
