"""The HTTP layer of the GraphQL endpoint, in parts: negotiation, parameters, results, HTTP caching, errors.

The endpoint itself (``server.graphql_http``) strings them together with execution.
"""
