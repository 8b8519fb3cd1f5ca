from docflow.pages import count_pages


def test_empty_document_has_one_page():
    assert count_pages(b"") == 1


def test_form_feeds_separate_pages():
    assert count_pages(b"a\fb\fc") == 3
def test_trailing_form_feed_is_not_a_page():
    assert count_pages(b"a\fb\f") == 2
