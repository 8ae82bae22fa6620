"""The MCP surface: the server's wiring (tools, resources, the tasks extension), the tools'
work, the DTOs that check every argument and the schemas generated from them, what a call
shares through the lifespan, the files and roots a call may read, reply files, and the
progress and log notices sent to the client.

Listing the tools loads only the wiring (``_server``, ``_caller``, ``_registration``,
``_resources``, ``_tasks``) and the published data (``_descriptions``, ``_schemas``); the rest
loads with the first call. Imports the views, delegations, store, relay and basics.
"""
