"""Page counting used by the extraction worker (form feeds separate pages)."""


def count_pages(content: bytes) -> int:
    if not content:
        return 1
    return content.count(b"\f") + 1
