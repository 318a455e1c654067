"""The operator's page (``GET /admin``) and its JSON API (``GET /api/...``), behind the admin token.

routes.py    the router: the page, login/logout, the JSON endpoints (figures come from ``reporting``)
auth.py      who gets in: bearer token or a signed session cookie
language.py  the page's words in German and English, chosen from the query or Accept-Language
chart.py     the 48-hour bar chart's layout (pure geometry, rendered as inline SVG)
"""
