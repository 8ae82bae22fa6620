"""One piece of work for one model, as an object with a lifecycle: the send job (checked before
anything is sent, sent on its routes, settled into a record), the render job (a video: uploaded,
submitted, polled, saved), the registry of delegations that outlive a request, the reply record
(data, not presentation), the notes a call adds to it, a conversation's turns, and the drain
that lets calls in flight finish at shutdown.

Imports the relay, the store, the media services and the shared basics; never MCP or the views.
"""
