"""devhost: a local Azure Functions host with the Durable Functions extension, on PostgreSQL.

It serves any v2-model `function_app.py` (HTTP, orchestration, activity, Service Bus queue and
timer triggers) by driving the real `azure-functions` / `azure-functions-durable` SDKs with the
host's own JSON protocol. See docs/adr/0002-devhost.md.
"""
