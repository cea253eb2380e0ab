"""The read-only dashboard: server-rendered pages and a JSON API over the Store's read queries.

    views.py      query parameters -> filters (strict), and the data of each page as plain dicts
    charts.py     server-side SVG charts (no script)
    security.py   security headers and authentication
    app.py        the Starlette application: routes, templates, the JSON API under /api/
    server.py     `routerwatch-collector serve`: listen address, TLS, uvicorn
"""
