"""What the agent reads: every tool result, in both parts (text for hosts that show only text,
structured content for those that show only that), within each host's size. The result budget
and the cut, what is known of each host, reply results and pages, running summaries, the
models list, the URIs of what the server keeps.

Imports the delegation's record, the relay's data and the shared basics; never the server.
"""
