"""The MCP server (``--mcp``): the named API endpoints as tools an agent lists and calls."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import pytest

from engines.testing import free_port, make_gallery
from ui import page
from ui.config import AppConfig, parse_args

pytest.importorskip("mcp", reason="the MCP server needs the mcp package (requirements.txt)")


async def tools_and_a_call(url: str, headers: dict[str, str] | None = None) -> tuple[dict[str, str], str]:
    """The tools an MCP client lists (name: description), and the text of one duplicates call."""
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async with httpx.AsyncClient(headers=headers, timeout=60) as http, \
            streamable_http_client(url, http_client=http) as (read, write, _), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        tools = {tool.name: tool.description or "" for tool in listed.tools}
        name = next(name for name in tools if name.endswith("duplicates"))
        answer = await session.call_tool(name, {"engine": "pixel", "options": {"features": "phash"}})
        return tools, "".join(getattr(part, "text", "") for part in answer.content)


@pytest.mark.integration
def test_search_and_duplicates_are_tools_with_their_docstrings_and_a_call_answers(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "gallery", per_class=2)
    copy = gallery / "train" / "red" / "copy.png"
    copy.write_bytes(next((gallery / "train" / "red").glob("*.png")).read_bytes())
    config = AppConfig(data=str(gallery), port=free_port(), host="127.0.0.1", mcp=True)
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    try:
        tools, answer = asyncio.run(tools_and_a_call(f"http://127.0.0.1:{config.port}/gradio_api/mcp/"))
    finally:
        demo.close()
    search = next(text for name, text in tools.items() if name.endswith("search"))
    assert "Rank a gallery's images against a query image, a sentence, or both" in search
    assert any(name.endswith("duplicates") for name in tools)
    groups = ast.literal_eval(answer)["groups"]  # Gradio's MCP server writes a dict as Python text
    assert any(group["kind"] == "exact" and any("copy.png" in m["file"] for m in group["members"]) for group in groups)


def test_mcp_is_off_by_default_and_refused_on_a_public_link_without_a_login(tmp_path: Path) -> None:
    gallery = make_gallery(tmp_path / "gallery", per_class=1)
    assert AppConfig().mcp is False
    base = AppConfig(data=str(gallery), port=free_port())
    with pytest.raises(SystemExit) as refused:
        parse_args(["--mcp", "--share"], base, check=True)
    assert refused.value.code == 2
    assert parse_args(["--mcp", "--share", "--auth", "me:secret"], base, check=True).mcp
    with pytest.raises(ValueError, match="needs --auth"):
        page.launch(page.build_demo(base), AppConfig(data=str(gallery), mcp=True, share=True))
    assert AppConfig.from_env({"IMAGE_SEARCH_MCP": "1"}).mcp


@pytest.mark.integration
def test_with_a_login_mcp_asks_for_it_and_then_works(tmp_path: Path) -> None:
    import base64

    import httpx

    gallery = make_gallery(tmp_path / "gallery", per_class=2)
    config = AppConfig(data=str(gallery), port=free_port(), host="127.0.0.1", mcp=True, auth=("ada", "s3cret"))
    demo = page.build_demo(config)
    page.launch(demo, config, prevent_thread_lock=True, quiet=True)
    url = f"http://127.0.0.1:{config.port}/gradio_api/mcp/"
    good = {"Authorization": "Basic " + base64.b64encode(b"ada:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"ada:wrong").decode()}
    try:
        listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
        accept = {"Accept": "application/json, text/event-stream"}
        for headers in ({}, bad, {"Authorization": "Basic !!!"}, {"Cookie": "access-token-x=forged"}):
            refused = httpx.post(url, json=listing, headers={**accept, **headers}, timeout=10)
            assert refused.status_code == 401 and "--auth" in refused.text
            assert "search" not in refused.text
        schema = httpx.get(url + "schema", timeout=10)
        assert schema.status_code == 401
        # The positive control: with the login, tools are listed and a call answers.
        names, answer = asyncio.run(tools_and_a_call(url, good))
    finally:
        demo.close()
    assert any(name.endswith("search") for name in names)
    assert not [name for name in names if name.endswith("_endpoint")]  # tools named as the endpoints are
    assert "groups" in answer and "Error" not in answer[:20]


def test_mcp_on_a_public_address_or_a_space_needs_a_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gallery = make_gallery(tmp_path / "gallery", per_class=1)
    base = AppConfig(data=str(gallery), port=free_port())
    monkeypatch.delenv("SPACE_ID", raising=False)
    assert parse_args(["--mcp"], base, check=True).mcp  # on this machine alone: no login needed
    for argv in (["--mcp", "--host", "0.0.0.0"], ["--mcp", "--share"]):
        with pytest.raises(SystemExit):
            parse_args(argv, base, check=True)
    assert parse_args(["--mcp", "--host", "0.0.0.0", "--auth", "me:pw"], base, check=True).mcp
    monkeypatch.setenv("SPACE_ID", "someone/image-search")
    with pytest.raises(SystemExit):
        parse_args(["--mcp"], base, check=True)
    with pytest.raises(ValueError, match="needs --auth"):
        page.launch(page.build_demo(base), AppConfig(data=str(gallery), mcp=True, host="0.0.0.0"))
