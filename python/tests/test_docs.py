"""Every fenced block of README.md, docs/*.md and examples/README.md runs as
written, or is marked as not meant to run (the conventions and the
placeholders are in ``docs_harness.py``)."""

from __future__ import annotations

import pytest

from docs_harness import PAGES, ROOT, Page, Services, all_blocks, models, problems_of, read_blocks, services  # noqa: F401

# --------------------------------------------------------------------------
# The tests of the pages


def test_every_block_runs_or_is_marked() -> None:
    found = [f"{b.where}: {p}" for b in all_blocks() for p in problems_of(b)]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("page", [p for p in PAGES if (ROOT / p).exists()])
def test_page_runs_as_written(page: str, services: Services) -> None:
    blocks = [b for b in read_blocks(page) if b.kind is not None]
    for block in blocks:
        assert not problems_of(block), f"{block.where}: {problems_of(block)}"
    runner = Page(page, services)
    try:
        for block in blocks:
            runner.run_block(block)
    finally:
        runner.close()
