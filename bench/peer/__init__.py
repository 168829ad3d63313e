"""The peer: the same secured message write on the stack the seeds use (FastAPI + SQLAlchemy 2
async + asyncpg + PyJWT, 2 uvicorn workers), so `make bench` can report Parley as a ratio of
something measured in the same run rather than as an absolute figure.

It is a benchmark fixture, not part of Parley: it lives in its own database (`parley_peer`),
accepts Parley's access tokens (same HS256 key, issuer and audience) and answers the two routes
the load script drives with the same shapes. What it does per request is listed in app.py.
"""
