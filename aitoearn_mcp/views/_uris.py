"""Where the agent finds what the server keeps for it: a reply and a conversation, as resources."""

__all__ = ["CONVERSATION_URI", "REPLY_URI"]

REPLY_URI = "aitoearn://replies/{reply_id}"
CONVERSATION_URI = "aitoearn://conversations/{conversation_id}"
