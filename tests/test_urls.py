"""URL canonicalization: one URL written many ways is one canonical string."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.urls import canonicalize, host_key, resolve


@pytest.mark.parametrize(("written", "canonical"), [
    ("HTTP://Example.COM/a", "http://example.com/a"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("http://example.com:8080/a", "http://example.com:8080/a"),
    ("http://example.com", "http://example.com/"),
    ("http://example.com/a/./b/../c", "http://example.com/a/c"),
    ("http://example.com/p/%35", "http://example.com/p/5"),
    ("http://example.com/%7euser", "http://example.com/~user"),
    ("http://example.com/a b", "http://example.com/a%20b"),
    ("http://example.com/a?b=2&a=1", "http://example.com/a?a=1&b=2"),
    ("http://example.com/a?x=", "http://example.com/a?x="),
    ("http://example.com/a#frag", "http://example.com/a"),
    ("http://example.com./a", "http://example.com/a"),
    ("http://[::1]:80/x", "http://[::1]/x"),
    ("http://example.com/caf\u00e9", "http://example.com/caf%C3%A9"),
])
def test_canonicalize(written, canonical):
    assert canonicalize(written) == canonical


def test_resolve_relative_base_and_non_links():
    page = "http://h:1/p/3"
    assert resolve(page, "4") == "http://h:1/p/4"
    assert resolve(page, "../q/5#x") == "http://h:1/q/5"
    assert resolve(page, "#top") == page
    assert resolve(page, "  //other.org/x ") == "http://other.org/x"
    assert resolve(page, "") == page
    assert resolve(page, "mailto:a@b.c") is None
    assert resolve(page, "javascript:void(0)") is None
    assert resolve("http://h:1/b/3/", "../../p/7") == "http://h:1/p/7"


def test_host_key_has_the_port():
    assert host_key("http://127.0.0.1:8801/x") == "127.0.0.1:8801"
    assert host_key("https://Example.org/") == "example.org:443"
    assert host_key("http://example.org/") == "example.org:80"


_segment = st.text(alphabet="abcXYZ019-._~%20", min_size=0, max_size=8)


@given(st.lists(_segment, max_size=4), st.sampled_from(["", "?b=1&a=2", "?q=x%20y"]),
       st.sampled_from(["", "#f"]))
def test_canonicalize_is_idempotent(segments, query, fragment):
    url = "http://Example.org/" + "/".join(segments) + query + fragment
    once = canonicalize(url)
    assert canonicalize(once) == once
    assert "#" not in once
