from docflow.pages import count_pages


def test_empty_document_has_one_page():
    assert count_pages(b"") == 1


def test_form_feeds_separate_pages():
    assert count_pages(b"a\fb\fc") == 3
