"""The HQ web console (``raqib hq console``): operators, fleet admins and auditors, by role.

A Starlette application with server-rendered Jinja2 pages and one small
script; see ``docs/console.md``. It reads HQ's database (the ingest's tables)
and keeps its own users, sessions and append-only audit log beside them.
"""
