"""routerwatch collector: the server side."""
