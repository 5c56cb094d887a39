vcl 4.1;
#
# Varnish in front of alphanode API instances: Varnish 7.1 or newer, with varnish-modules
# (Debian: `apt-get install varnish varnish-modules`) for xkey.
#
# - Requests go round robin to the instances listed in fleet.vcl, skipping any whose
#   /healthz does not answer 200 (it answers 503 while the instance's database does not).
# - GET responses are cached as the API's Cache-Control says: public queries for max-age,
#   then served stale for stale-while-revalidate while a fresh copy is fetched. Nothing the
#   API marks private, no-store or no-cache is cached, nor anything asked with an
#   Authorization header: Varnish's built-in VCL, which runs after each subroutine here
#   that does not return, passes those (and every method but GET and HEAD).
# - Each response is tagged with the keys of its Surrogate-Key header (`p<id>` per post,
#   `lists`), and a PURGE request naming keys in its Surrogate-Key header drops every
#   response tagged with any of them. The API's instances send those purges after each
#   write (ALPHANODE_VARNISH_PURGE_URLS); by hand:
#       curl -X PURGE -H 'Surrogate-Key: p12 lists' http://127.0.0.1:6081/
#   Only the addresses of the `purgers` ACL, in fleet.vcl, may purge (localhost as shipped).
# - Clients get X-Cache (HIT, MISS or PASS) beside Varnish's own Age and X-Varnish, and
#   never the tags.
#
# What differs between sites, the instances and the ACL, is in fleet.vcl, which this file
# includes by name: varnishd looks for it in its vcl_path, by default /etc/varnish and then
# /usr/share/varnish/vcl. Install both files in /etc/varnish and edit fleet.vcl there, or
# start varnishd on the repository's with `-p vcl_path=$PWD/deploy/varnish`.

import directors;
import std;
import xkey;

# An instance is healthy while its /healthz answers 200 within a second, three probes of
# the last five; a new one is healthy from its first good probe.
probe healthz {
    .url = "/healthz";
    .interval = 1s;
    .timeout = 1s;
    .window = 5;
    .threshold = 3;
}

sub vcl_init {
    new fleet = directors.round_robin();
}

# The instances (backends with `.probe = healthz`, each added to `fleet` in vcl_init) and
# the `purgers` ACL.
include "fleet.vcl";

sub vcl_recv {
    if (req.method == "PURGE") {
        if (client.ip !~ purgers) {
            return (synth(403, "Forbidden"));
        }
        if (!req.http.Surrogate-Key) {
            return (synth(400, "Name the keys to purge in a Surrogate-Key header"));
        }
        # A hard purge: the responses are gone, not kept for grace, so that nobody is served
        # the page a write replaced.
        set req.http.X-Purged = xkey.purge(req.http.Surrogate-Key);
        return (synth(200, "Purged"));
    }
    set req.backend_hint = fleet.backend();
    if (req.url ~ "^/(healthz|metrics)(\?|$)") {
        # Always the instance's own answer (and /metrics is one instance's, whichever the
        # director picked: scrape each instance directly).
        return (pass);
    }
    if (req.url ~ "^/graphql(\?|$)") {
        # The same query with its parameters in another order is the same response.
        set req.url = std.querysort(req.url);
        # The API reads no cookie; the built-in VCL would pass every request carrying one.
        unset req.http.Cookie;
    }
    # No return: the built-in VCL goes on, passing requests with Authorization.
}

sub vcl_synth {
    if (req.method == "PURGE") {
        set resp.http.Content-Type = "text/plain; charset=utf-8";
        if (resp.status == 200) {
            set resp.http.X-Purged = req.http.X-Purged;
            set resp.body = "purged " + req.http.X-Purged + " object(s)" + {"
"};
        } else {
            set resp.body = resp.reason + {"
"};
        }
        return (deliver);
    }
}

sub vcl_backend_response {
    # xkey indexes the object under each key of its xkey header.
    if (beresp.http.Surrogate-Key) {
        set beresp.http.xkey = beresp.http.Surrogate-Key;
    }
    # Past its grace a response is kept ten minutes more, to be revalidated with its ETag:
    # an instance whose answer has not changed sends a 304 instead of the body.
    set beresp.keep = 10m;
    # No return: the built-in VCL goes on, making anything private, no-store or no-cache
    # uncacheable (a hit-for-miss: those requests are not queued behind one another).
}

sub vcl_backend_error {
    # No instance answered: the API's kind of error rather than Varnish's HTML page.
    set beresp.http.Content-Type = "application/json; charset=utf-8";
    set beresp.http.Cache-Control = "no-store";
    set beresp.http.Retry-After = "5";
    set beresp.body = """{"errors":[{"message":"no instance of the API answered","extensions":{"code":"SERVICE_UNAVAILABLE"}}]}""";
    return (deliver);
}

sub vcl_deliver {
    if (obj.uncacheable) {
        set resp.http.X-Cache = "PASS";
    } elsif (obj.hits > 0) {
        set resp.http.X-Cache = "HIT";
        # The timings of the request that filled the cache, not of this one.
        unset resp.http.Server-Timing;
    } else {
        set resp.http.X-Cache = "MISS";
    }
    unset resp.http.xkey;
    unset resp.http.Surrogate-Key;
}
