"""The proxy: an ASGI app (routes only), authentication, and the command line."""
