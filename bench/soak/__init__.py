"""A long soak of the served API: ``python -m bench.soak [--dialect sqlite|postgresql] [--minutes N] ...``.

Method
------
1. **Store.** ``alphanode generate`` of ``--posts`` documents (default 20,000, seed 42,
   kept in ``var/soak/n<posts>/corpus`` and reused) and ``alphanode import`` of them
   into a new SQLite file (``var/soak/sqlite.db``) or a new PostgreSQL database
   (``alphanode_soak`` on 127.0.0.1:5432, user postgres, dropped at the end), through
   ``bench/stores.py``; an editor token for the writes (``alphanode token create``).
2. **Requests.** The frontend's operations (``server/operations``) with variables drawn
   from the store by ``bench/workload.py``: post pages by slug (every post) and by
   reference, listing pages with real cursors, filtered listings in several orders,
   searches of common and rare words, facets, entity pages and the vocabulary. Reads
   go as GET, as the site sends them, so that the response cache answers them; each
   operation's bodies are drawn 70% from its first 200 (the popular ones) and 30% from
   all of them, so the cache both hits and misses (and evicts, past its size). One
   read in ten is sent with ``If-None-Match`` of an ETag seen before (304 is a success).
3. **Peak.** The API under uvicorn (``bench/load.py``: one worker, no access log, a
   free port) answers two closed loops (8 connections, each sending its next request
   when its answer is in) for ``--peak-seconds`` each: the reads alone, then the soak's
   95/5 mix. Both are recorded; the soak's rate is a share of the mix's (``--peak-of
   reads`` for the reads'): each write purges every cached list and costs far more than
   a read, so the reads' peak is several times what the mixed traffic sustains.
4. **Fill.** The server holds bounded caches (the response cache, 64 MiB of bodies;
   kept search matches, rankings and posting lists; counts; parsed documents; prepared
   statements), and a process's memory grows until they are full: at the soak's rate that
   took 20 to 25 minutes, which a half-hour soak would report as a trend. So before the
   soak the caches are filled at saturation (closed loops of 8 connections, for at most
   ``--fill-minutes``, default 20; 0 skips it): first the reads alone, until the response
   cache holds 90% of its bound (``ALPHANODE_CACHE_MAX_BYTES``, set to 64 MiB here) or
   grew less than 0.5 MiB in a 15 s step (the reads' variety is spent); then the 95/5 mix
   (what writes bring: matches and rankings at each new store version, counts, statements),
   until the server's mean USS over the last two minutes is at most 1% above that of the
   two before. Its length, each stage's end, requests, errors (counted with the peak's),
   the server's USS and the cache's size before and after are recorded; the fill's writes
   are checked with the soak's. The soak's own first five minutes stay its warm-up.
5. **Soak.** An open loop at ``--load`` (default 0.7) of that peak, or ``--rate``:
   request ``i`` is scheduled at ``start + i / rate`` whatever the answers do, sent on
   the first free connection of 32 kept open, and its latency counts from the moment it
   was scheduled, so time spent queued behind a slow answer is in it. 95% reads, 5%
   writes with the editor token: ``updatePost`` (a new title, with the ``expectedHash``
   the previous write answered), ``setStatus``, ``markReviewed`` on a pool of posts not
   read by slug (a new title is a new slug), never two writes to one post at a time; and
   ``importDocument``: one in ten (``NEW_IMPORT_SHARE``) a freshly synthesized document
   (seed 4242, a new source id each), the others one of those imported again with a new
   title (an update), so that the store stays near its size. Each write that answers
   ``PostSaved`` (or a receipt that created or updated the post) is recorded with what it
   should have left in the store; a post whose write failed is read again before its next
   write (and whether the failed write is in the store all the same is counted).
6. **Samples.** At the start and every ``--sample-seconds`` (60; a tenth of the run for
   runs shorter than ten minutes): the interval's requests, errors (any status but 200
   and 304, a GraphQL ``errors`` entry, a write not saved, a timeout), p50/p99/max
   latency of all requests and of reads and writes apart, cache hits and misses (from
   ``Server-Timing``'s ``cache`` part); for the uvicorn process and its children, and on
   PostgreSQL each backend ``pg_stat_activity`` lists for the database, RSS, USS and PSS
   (psutil ``memory_full_info``), open file descriptors and threads; the server's
   database connections (PostgreSQL: backends of the database; SQLite: the server's open
   descriptors on the store's files); the load generator's CPU time.
7. **Checks.** Every recorded write is read back over GraphQL with the editor token
   (the store, past the cache) and without (what readers get, through the cache): title,
   status and ``contentHash`` must be what the last write left; each imported document is
   exported (``store.export``, what ``alphanode export`` prints) and must be the
   imported text byte for byte, and ``--cli-exports`` of them also through the
   ``alphanode export --reference`` command. The verdict: no errors (peak and soak), no
   lost write, no stale read, the server's mean USS and the p99 latency of the last ten
   minutes at most 10% above those of the first ten after a five-minute warm-up (runs
   under 25 minutes: last third against first third; p99 with a 1 ms floor), file
   descriptors and database connections not growing (last window's maximum over the
   first's: at most 4 descriptors, 2 connections). Written to
   ``bench/results/<date>-soak-<dialect>[-N].json`` with a plot beside it (``.png``:
   p50/p99 and the server's USS/PSS over time). The exit status is 1 when the verdict
   fails.

Caveats
-------
- The load generator shares the machine with the server (and PostgreSQL): it is one
  asyncio process writing HTTP/1.1 by hand on keep-alive sockets, to cost little; its
  CPU time is reported beside the server's.
- A write purges ``lists`` from the cache: listings, searches and facets miss after each
  write, which is what the hit ratio mostly measures.
- New posts grow the store a little during the run (about 1% in half an hour), and the
  fact index and search caches with it.
"""

from __future__ import annotations

from bench.soak.run import main

__all__ = ["main"]
