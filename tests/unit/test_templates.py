"""Template records, locale fallback and rendering (streams/templates.py, streams/rendering.py)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from streams.records import InvalidRecord, parse_request
from streams.rendering import RenderError, compile_template, html_to_text
from streams.templates import locale_chain, normalise_locale, parse_template


def record(**changes: Any) -> bytes:
    value: dict[str, Any] = {
        "template_id": "welcome",
        "version": 3,
        "default_locale": "en",
        "locales": {
            "en": {
                "push": {"title": "Welcome {{ name }}", "body": "Order {{ order_id }}"},
                "email": {"subject": "Hi {{ name }}", "html": "<p>{{ name }} &amp; co</p>"},
                "sms": {"text": "Welcome {{ name }}"},
            },
            "pt": {
                "push": {"title": "Bem-vindo {{ name }}", "body": "Pedido {{ order_id }}"},
                "sms": {"text": "Bem-vindo {{ name }}"},
            },
            "pt_br": {"push": {"title": "Bem-vindo, {{ name }}!", "body": "Oi"}},
        },
    }
    value.update(changes)
    return orjson.dumps(value)


def rendered(locale: str | None, channels: tuple[str, ...], **data: Any) -> dict[str, Any]:
    compiled = compile_template(parse_template(record()))
    return {c: p for c, p in compiled.render(channels, locale, data).items()}


def test_locale_tags_are_normalised_and_fall_back_to_the_default() -> None:
    assert normalise_locale("pt_br") == "pt-BR"
    assert normalise_locale("ZH-hant-tw") == "zh-Hant-TW"
    assert locale_chain("pt-BR", "en") == ["pt-BR", "pt", "en"]
    assert locale_chain("fr", "en") == ["fr", "en"]
    assert locale_chain(None, "en") == ["en"]
    assert list(parse_template(record()).locales) == ["en", "pt", "pt-BR"]


def test_each_channel_takes_the_most_specific_locale_that_has_its_part() -> None:
    parts = rendered("pt-BR", ("push", "sms", "email"), name="Ana", order_id="7")
    assert (parts["push"].title, parts["push"].body) == ("Bem-vindo, Ana!", "Oi")  # pt-BR
    assert parts["sms"].body == "Bem-vindo Ana"  # pt: pt-BR has no SMS part
    assert parts["email"].title == "Hi Ana"  # en: neither pt-BR nor pt has e-mail
    parts = rendered("pt", ("push",), name="Rui", order_id="8")
    assert (parts["push"].title, parts["push"].body) == ("Bem-vindo Rui", "Pedido 8")
    parts = rendered("fr", ("push", "webhook"), name="Zoé", order_id="9")
    assert (parts["push"].title, parts["push"].body) == ("Welcome Zoé", "Order 9")
    # A channel without a part anywhere takes the push part.
    assert parts["webhook"] == parts["push"]


def test_html_is_escaped_and_gets_a_text_alternative() -> None:
    email = rendered("en", ("email",), name="<script>x</script>", order_id="1")["email"]
    assert email.html == "<p>&lt;script&gt;x&lt;/script&gt; &amp; co</p>"
    assert email.body == "<script>x</script> & co"  # text alternative: the text, unescaped
    # Text parts are not HTML: no escaping.
    assert rendered("en", ("sms",), name="a<b")["sms"].body == "Welcome a<b"
    assert (
        html_to_text(
            "<html><head><style>p{}</style></head><body><h1>Hi</h1><p>One<br>two</p>"
            "<p><a href='https://x.test'>link</a></p><script>bad()</script></body></html>"
        )
        == "Hi\n\nOne\ntwo\n\nlink (https://x.test)"
    )


def test_a_missing_variable_names_the_template_the_part_and_the_variable() -> None:
    with pytest.raises(RenderError) as caught:
        rendered("pt-BR", ("push",), order_id="1")
    assert str(caught.value) == "template 'welcome' (pt-BR push.title): 'name' is undefined"
    with pytest.raises(RenderError, match=r"\(en email.subject\): 'name' is undefined"):
        rendered("fr", ("email",))


def test_the_sandbox_refuses_internals_and_output_is_bounded() -> None:
    def one(text: str) -> bytes:
        return record(locales={"en": {"push": {"title": "t", "body": text}}})

    escape = compile_template(parse_template(one("{{ name.__class__.__mro__ }}")))
    with pytest.raises(RenderError, match=r"SecurityError: access to attribute .__class__"):
        escape.render(("push",), None, {"name": "x"})
    huge = compile_template(
        parse_template(one("{% for i in range(99999) %}{{ name }}{% endfor %}"))
    )
    with pytest.raises(RenderError, match="longer than 16000 characters"):
        huge.render(("push",), None, {"name": "x" * 100})


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"locales": {"en": {"push": {"title": "{{ x", "body": "b"}}}}, "line 1"),
        ({"locales": {"en": {}}}, "no part for any channel"),
        ({"locales": {"en": {"email": {"subject": "s"}}}}, "needs 'html' or 'text'"),
        ({"default_locale": "de"}, "default_locale 'de' is not one of"),
        ({"default_locale": None}, "'default_locale' is required"),
        ({"locales": None}, "'locales' is required"),
        ({"template_id": "a b"}, "template_id"),
        ({"locales": {"en": {"push": {"body": "b", "colour": "red"}}}}, "colour"),
    ],
)
def test_bad_templates_are_refused_with_a_reason(changes: dict[str, Any], reason: str) -> None:
    with pytest.raises((InvalidRecord, RenderError), match=reason):
        compile_template(parse_template(record(**changes)))


def test_a_delete_needs_only_the_id_and_version() -> None:
    deleted = parse_template(b'{"template_id": "welcome", "version": 4, "action": "delete"}')
    assert deleted.deleted and deleted.version == 4


def test_a_template_request_needs_no_inline_text_and_keeps_it_unrendered() -> None:
    request = parse_request(b'{"notification_id": "n", "user_id": "u", "template_id": "welcome"}')
    assert (request.template_id, request.title, request.body) == ("welcome", "", "")
    inline = parse_request(
        b'{"notification_id": "n", "user_id": "u", "template_id": "t", "title": "{x}", "body": "b"}'
    )
    assert inline.title == "{x}"  # Jinja templates are a separate path from {name}
    with pytest.raises(InvalidRecord, match="'title' is required"):
        parse_request(b'{"notification_id": "n", "user_id": "u", "body": "b"}')
