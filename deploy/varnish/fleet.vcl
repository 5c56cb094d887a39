# The site's part of alphanode.vcl, which includes it: the API's instances, and who may purge.
# Edit it for your site; alphanode.vcl stays as shipped.

# One backend per API instance (`alphanode serve --port …`), each probed on /healthz.
backend one {
    .host = "127.0.0.1";
    .port = "8001";
    .probe = healthz;
}

backend two {
    .host = "127.0.0.1";
    .port = "8002";
    .probe = healthz;
}

sub vcl_init {
    fleet.add_backend(one);
    fleet.add_backend(two);
}

# Who may send PURGE: the addresses the API's instances reach Varnish from (this machine, as
# shipped). Add a host ("10.0.0.7";) or a network ("10.0.0.0"/24;) where they run on other
# machines. A proxy or load balancer in front of Varnish is the client.ip of everyone it
# forwards, unless it speaks the PROXY protocol to Varnish (`-a :6081,PROXY`): never list
# such a proxy here, or anybody on the Internet may purge.
acl purgers {
    "127.0.0.1";
    "::1";
}
