"""What the agent reads of the server before any call: its instructions, and each tool's
description (hosts that defer tools, like Claude Code and Codex, find them by these words)."""

__all__ = [
    "GENERATE_IMAGE_DESCRIPTION",
    "GENERATE_VIDEO_DESCRIPTION",
    "GET_REPLY_DESCRIPTION",
    "INSTRUCTIONS",
    "LIST_CONVERSATIONS_DESCRIPTION",
    "LIST_MODELS_DESCRIPTION",
    "SEND_MESSAGE_DESCRIPTION",
]

INSTRUCTIONS = (
    "Delegate work to other models sold through AiToEarn (GPT, Gemini, DeepSeek, Claude and more): list_models "
    "shows the catalogue; send_message asks one model, or several at once for second opinions; a long reply "
    "comes back as status running with a reply_id: collect it with get_reply. generate_image makes or edits "
    "images (list_models kind image shows sizes and prices); generate_video renders a video; an image or video "
    "that outlasts the wait comes back as status running with a reply_id too (collect it with get_reply)."
)

LIST_MODELS_DESCRIPTION = (
    "List the chat models AiToEarn sells: name (send_message's `model`), channel, modalities, price in "
    "credits, description. Filter by `channel` or `modality`; `detail: NAME` gives a model's full entry. "
    "`kind: image` lists generate_image's models (sizes by price, qualities, styles, edits); `kind: video` the "
    "video models (modes, resolutions, durations, credits per second). Cached 5 minutes; `refresh: true` asks again."
)

GENERATE_IMAGE_DESCRIPTION = (
    "Make an image from a prompt with an AiToEarn image model, or edit images: pass `images` (local paths or "
    "https URLs; `mask` repaints only its transparent part). `size`, `quality` and `style` come from list_models "
    "kind image; the price depends on the size. Saves the full-resolution file (`save_to`, default the first "
    "root) and returns its path, its link and a preview; one that outlasts `wait_seconds` returns status running "
    "with a reply_id: collect it with get_reply. Spends AiToEarn credits; a call over "
    "AITOEARN_MAX_CREDITS_PER_CALL asks the user first."
)

SEND_MESSAGE_DESCRIPTION = (
    "Delegate to another model or ask for a second opinion: one Anthropic Messages request to any model from "
    "list_models (GPT, Gemini, DeepSeek, Claude, ...), or with `models` to 2-8 of them at once. Returns the whole "
    "reply: text, and the full Message as structured content (thinking, tool_use, usage, route, credits, notes). "
    "A reply that outlasts `wait_seconds` returns status running with a reply_id while the model goes on: collect "
    "it with get_reply. Spends AiToEarn credits; cancelling this call stops generation."
)

LIST_CONVERSATIONS_DESCRIPTION = (
    "Your recent send_message conversations (kept between sessions) and stored replies, newest first. "
    "With conversation_id: that conversation's turns."
)

GET_REPLY_DESCRIPTION = (
    "Collect a send_message reply, a generate_image image or a generate_video video by its reply_id: waits up to "
    "`wait_seconds` while it runs, then returns it like the tool that started it. A long reply comes in parts: pass "
    "the result's next_offset as `offset`. `cancel: true` stops the generation (an image or video: stops waiting) "
    "and returns what arrived."
)

GENERATE_VIDEO_DESCRIPTION = (
    "Generate a video with an AiToEarn video model (Seedance, HappyHorse, Grok, ...) from text, or from reference "
    "images, videos or audio (https URLs, or local files it uploads). Rendering takes minutes: status running with "
    "a reply_id comes first; get_reply collects the saved file's path, the video URL and a cover image. Spends "
    "credits (the catalogue's price; over AITOEARN_MAX_CREDITS_PER_CALL it is refused); a submitted video cannot "
    "be stopped."
)
