"""HQ: the server side of Raqib (ingest, database, enrolment, evidence store and audit).

A separate top-level package from `agent` (what runs on the camera), installed
with the `hq` extra; both speak the wire format in `agent.envelope`,
`agent.messages` and `agent.transport.topics`.
"""
