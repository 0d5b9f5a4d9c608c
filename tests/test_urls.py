"""URL canonicalization: one URL written many ways is one canonical string."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crawler.urls import SESSION_PARAMS, canonicalize, host_key, resolve


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
    # session ids and trackers go, in the query and as the servlet's path parameter
    ("http://example.com/a;jsessionid=0AF3B?x=1", "http://example.com/a?x=1"),
    ("http://example.com/a;JSESSIONID=0AF3B;v=2/b", "http://example.com/a;v=2/b"),
    ("http://example.com/a?id=3&PHPSESSID=9f&utm_source=n&utm_medium=m",
     "http://example.com/a?id=3"),
    ("http://example.com/?ASPSESSIONIDQQGGQGPA=K&CFID=1&CFTOKEN=2", "http://example.com/"),
    ("http://example.com/p?gclid=x&fbclid=y&msclkid=z&mc_cid=1&mc_eid=2&_ga=3",
     "http://example.com/p"),
    ("http://example.com/p?utm%5Fcampaign=x&q=1", "http://example.com/p?q=1"),
    ("http://example.com/x/..;jsessionid=1/y", "http://example.com/y"),
    # generic names mean content on too many sites to be stripped
    ("http://example.com/a?sid=4&session=5&s=6&ref=7",
     "http://example.com/a?ref=7&s=6&session=5&sid=4"),
    # a value or a path that only looks like one is kept
    ("http://example.com/jsessionid?q=utm_source", "http://example.com/jsessionid?q=utm_source"),
])
def test_canonicalize(written, canonical):
    assert canonicalize(written) == canonical


def test_stripping_can_be_switched_off():
    url = "http://example.com/a;jsessionid=1?utm_source=n&b=2"
    assert canonicalize(url, strip_params=False) == "http://example.com/a;jsessionid=1?b=2&utm_source=n"
    assert resolve("http://example.com/", url, strip_params=False) == canonicalize(
        url, strip_params=False)
    assert resolve("http://example.com/", url) == "http://example.com/a?b=2"


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


_name = st.one_of(st.sampled_from(sorted(SESSION_PARAMS)),
                  st.sampled_from(["utm_source", "UTM_Medium", "ASPSESSIONIDAB", "JSessionId"]),
                  st.text(alphabet="abs_id", min_size=1, max_size=4))
_value = st.text(alphabet="aZ0;=%20._/", max_size=5)


@given(st.lists(_segment, max_size=4), st.lists(st.tuples(_name, _value), max_size=4),
       st.sampled_from(["", ";jsessionid=AB12", ";JSESSIONID=x;v=1", ";jsessionid="]),
       st.booleans())
def test_canonicalize_with_session_parameters_is_idempotent(segments, pairs, path_param,
                                                            strip):
    query = "&".join(f"{name}={value}" for name, value in pairs)
    url = "http://Example.org/" + "/".join(segments) + path_param + "?" + query
    once = canonicalize(url, strip_params=strip)
    assert canonicalize(once, strip_params=strip) == once
    if strip:
        assert "jsessionid" not in once.lower()
        names = [p.split("=")[0].lower() for p in once.partition("?")[2].split("&") if p]
        assert not any(n in SESSION_PARAMS or n.startswith(("utm_", "aspsessionid"))
                       for n in names)
    # Stripping after the rest changes nothing more: the off form strips to the on form.
    assert canonicalize(canonicalize(url, strip_params=False)) == canonicalize(url)
