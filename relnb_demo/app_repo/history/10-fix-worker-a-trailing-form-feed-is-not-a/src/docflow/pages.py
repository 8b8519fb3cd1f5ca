"""Page counting used by the extraction worker (form feeds separate pages)."""


def count_pages(content: bytes) -> int:
    if not content:
        return 1
    # A trailing form feed does not start a new page.
    return content.rstrip(b"\f").count(b"\f") + 1
