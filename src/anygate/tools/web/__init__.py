"""Web search and web fetch, run by the gateway for upstreams that do not run Anthropic's server tools.

The loop that drives a model's turn calls into this package only:

- :class:`WebClient` (``search``, ``fetch``, ``aclose``): the I/O, with the fetcher's address guard;
- :data:`WEB_SEARCH_FUNCTION` / :data:`WEB_FETCH_FUNCTION`: the function tools the model is given;
- :func:`search_result_block` / :func:`fetch_result_block`: the client's result blocks;
- :func:`render_search_block` / :func:`render_fetch_block` / :func:`error_text`: what the model reads for
  a result block, now or on a later turn; :class:`Source` feeds ``web_search_result_location`` citations;
- :func:`urls_in_conversation` / :func:`conversation_allows` / :func:`urls_in_result_block`: the URLs a
  model may fetch (anything else is refused with ``url_not_allowed``);
- :class:`WebToolError`: every failure, with Anthropic's error code.

Settings live in :mod:`anygate.web_settings` (``general_settings.web_search`` / ``web_fetch``).
"""

from anygate.tools.web.blocks import (
    WEB_FETCH_FUNCTION,
    WEB_SEARCH_FUNCTION,
    Source,
    error_text,
    fetch_result_block,
    render_fetch_block,
    render_search_block,
    search_result_block,
)
from anygate.tools.web.client import WebClient
from anygate.tools.web.common import CHARS_PER_TOKEN, WebToolError, domain_allowed, normalize_url
from anygate.tools.web.conversation import conversation_allows, urls_in_conversation, urls_in_result_block
from anygate.tools.web.fetch import FetchedPage
from anygate.tools.web.guard import forbidden_address
from anygate.tools.web.search import SearchHit

__all__ = [
    "CHARS_PER_TOKEN",
    "WEB_FETCH_FUNCTION",
    "WEB_SEARCH_FUNCTION",
    "FetchedPage",
    "SearchHit",
    "Source",
    "WebClient",
    "WebToolError",
    "conversation_allows",
    "domain_allowed",
    "error_text",
    "fetch_result_block",
    "forbidden_address",
    "normalize_url",
    "render_fetch_block",
    "render_search_block",
    "search_result_block",
    "urls_in_conversation",
    "urls_in_result_block",
]
