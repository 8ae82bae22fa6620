"""The media services layer: AiToEarn's native image, video and asset routes.

This subpackage owns everything between an MCP tool and the relay's media endpoints:

* the three public catalogues (image generation, image edit, video generation), parsed
  leniently and cached (``MediaCatalogue``);
* prices in credits from those catalogues (``image_price``, ``video_price``);
* checking a request against the chosen model's entry before anything is sent
  (``check_image``, ``check_image_edit``, ``check_video``: every refusal is an ``InputError``
  naming the field and the fix);
* the native client (``MediaClient``): image generate/edit (sync and async), video submit and
  status, uploads (sign, keyless PUT to storage, confirm), with the envelope's error codes
  mapped to the ``aitoearn_mcp._errors`` classes;
* saving results (``download``, ``save_bytes``: atomic, size-bounded, never overwriting),
  image previews (``preview``, ``inspect_image``; Pillow, imported lazily), and waiting for a
  video or an image task (``poll_task``).

Imports only the shared basics (and the standard library, pydantic, anyio, httpx2 and, lazily,
Pillow); exports nothing, so importing one piece never loads its siblings. Nothing here knows
about MCP, tools, roots or conversations; the tools layer opens the caller's files, configures the
``httpx2.AsyncClient`` (base URL = site root, timeouts) and turns the results into content.

A typical text-to-image call (each name from its private module)::

    client = MediaClient(http, key)
    models = await catalogue.image_models(client)
    prepared = check_image(ImageRequest(model="gpt-image-2", prompt="...", size="1024x1024"), models.models)
    # prepared.price is the estimated credits (None: not listed); show it before spending
    result = await client.generate_image(prepared)
"""
